"""Churn and ranking distances as the tuner's PD objective: chosen by name, recorded per pair."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from keras_smelu import churn, tuning
from keras_smelu.replicas import ReplicaSettings, train_replicas
from keras_smelu.tuning import Objective, TrialSettings
from keras_smelu.tuning._job import JobError, job_from_dict
from keras_smelu.tuning._trial import pair_measures
from tests._tuning_fixtures import tiny_builder, tiny_dataset


def test_objective_names_and_unknown_kind_lists_the_allowed_ones():
    assert Objective(pd="churn").names == ("val_loss", "pd_churn")
    assert Objective(pd="rbo_distance", group="user").names[1] == "pd_rbo_distance"
    with pytest.raises(ValueError, match="pd") as error:
        Objective(pd="churning")
    for allowed in ("relative", "absolute", "churn", "topk_distance", "rbo_distance"):
        assert allowed in str(error.value)
    assert "did you mean 'churn'" in str(error.value)


def test_ranking_objectives_need_a_group_column():
    with pytest.raises(ValueError, match="group"):
        Objective(pd="topk_distance")
    with pytest.raises(ValueError, match="rbo_p"):
        Objective(pd="rbo_distance", group="user", rbo_p=1.0)
    with pytest.raises(ValueError, match="top_k"):
        Objective(pd="topk_distance", group="user", top_k=0)


def test_job_file_names_the_bad_objective_field():
    base = {"job": {"name": "j"}, "data": {"dataset": "synthetic"}}
    with pytest.raises(JobError, match=r"^\[objective\] pd: expected one of") as error:
        job_from_dict({**base, "objective": {"pd": "rbo"}})
    assert "rbo_distance" in str(error.value)
    with pytest.raises(JobError, match=r"^\[objective\] group:"):
        job_from_dict({**base, "objective": {"pd": "rbo_distance"}})
    job = job_from_dict({**base, "objective": {"pd": "churn", "churn_threshold": 0.2}})
    assert job.trial_settings().objective.churn_threshold == 0.2


def test_a_group_that_is_no_input_column_is_refused_before_training():
    dataset = tiny_dataset()
    settings = TrialSettings(objective=Objective(pd="topk_distance", group="customer"))
    with pytest.raises(ValueError, match="customer") as error:
        pair_measures(dataset.test, settings)
    assert "'user'" in str(error.value)  # the columns there are


def test_churn_objective_job_records_churn_per_pair(tmp_path):
    dataset = tiny_dataset()
    training = ReplicaSettings(pairs=3, epochs=1)
    # The ReLU reference's pair 1, trained here first: a threshold between the two replicas'
    # predictions of the row where they differ most makes a decision change.
    first = train_replicas(
        tiny_builder(dataset),
        dataset.train,
        dataset.test,
        settings=dataclasses.replace(training, pairs=1),
        return_models=True,
        verbose=0,
    )
    p1, p2 = (np.asarray(m.predict(dataset.x_test, verbose=0)) for m in first.models)
    row = int(np.argmax(np.abs(p1 - p2)))
    threshold = float((p1[row] + p2[row]) / 2.0)
    expected = float(np.mean((p1 > threshold) != (p2 > threshold)))
    assert expected > 0.0

    settings = TrialSettings(training, Objective(pd="churn", churn_threshold=threshold))
    report = tuning.tune(
        {"mlp": tiny_builder(dataset)},
        dataset,
        settings=settings,
        trials=1,
        sampler="random",
        study_name="churn",
        output=tmp_path,
        verbose=0,
    )
    result = report.results["mlp"]
    assert result.objective_names == ("val_loss", "pd_churn")
    reference = result.reference
    assert reference is not None and len(result.complete_trials) == 2
    for trial in result.complete_trials:
        at = trial.epoch - 1
        per_pair = [pair["pd"][at] for pair in trial.pairs]
        assert len(per_pair) == 3
        for pd in per_pair:
            assert 0.0 <= pd["churn"] <= 1.0
            assert pd["churn"] == pytest.approx(pd["good_churn"] + pd["bad_churn"])
        assert trial.pd == pytest.approx(np.mean([pd["churn"] for pd in per_pair]))
        assert trial.history["pd"][at] == pytest.approx(trial.pd)
    # The paired statistics read the per-pair churn like any PD kind.
    comparison = result.comparison(result.candidates[0])
    assert comparison is not None and comparison.pd_ratio.n == 3
    # The reference's pair 1 holds the churn of the replicas trained above.
    pair_one = next(p for p in reference.pairs if p["pair"] == 1)
    assert pair_one["pd"][0]["churn"] == pytest.approx(expected)
    good = churn.good_churn(p1, p2, dataset.y_test, threshold=threshold)
    assert pair_one["pd"][0]["good_churn"] == pytest.approx(good)


def test_rbo_distance_objective_ranks_each_users_items(tmp_path):
    dataset = tiny_dataset()
    settings = TrialSettings(
        ReplicaSettings(pairs=1, epochs=1),
        Objective(pd="rbo_distance", group="user", rbo_p=0.8),
    )
    report = tuning.tune(
        {"mlp": tiny_builder(dataset)},
        dataset,
        settings=settings,
        trials=1,
        sampler="random",
        study_name="rbo",
        output=tmp_path,
        verbose=0,
    )
    result = report.results["mlp"]
    assert result.objective_names[1] == "pd_rbo_distance"
    for trial in result.complete_trials:
        pd = trial.pairs[0]["pd"][trial.epoch - 1]
        assert 0.0 <= pd["rbo_distance"] <= 1.0 and 0.0 <= pd["topk_distance"] <= 1.0
        assert trial.pd == pytest.approx(pd["rbo_distance"])
