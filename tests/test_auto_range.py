"""`width_range = "auto"`: the searched widths come from the ReLU reference's pre-activations."""

from __future__ import annotations

import json

import optuna
import pytest

from keras_smelu import tuning
from keras_smelu.diagnostics import auto_width_range, inspect_activations
from keras_smelu.replicas import train_replicas
from keras_smelu.tuning import SearchSpace
from keras_smelu.tuning._job import JobError, job_from_dict
from keras_smelu.tuning._optuna_backend import AUTO_RANGE_ATTR, make_storage
from tests._tuning_fixtures import tiny_builder, tiny_dataset

RULE = "auto: from ReLU's pre-activation scales"


def _measured_here(dataset, bounds=(0.01, 10.0)):
    """The range, measured independently on the reference's pair 1 trained again."""
    report = train_replicas(
        tiny_builder(dataset),
        dataset.train,
        dataset.test,
        pairs=1,
        epochs=1,
        return_models=True,
        verbose=0,
    )
    rows = [
        s
        for m in report.models
        for s in inspect_activations(m, dataset.x_test, quantiles=(0.01, 0.9))
    ]
    return auto_width_range(rows, low_share=0.01, high_share=0.9, bounds=bounds)


def test_space_and_job_validate_the_auto_range():
    with pytest.raises(ValueError, match="width_range") as error:
        SearchSpace(width_range="automatic")
    assert "'auto'" in str(error.value)
    with pytest.raises(ValueError, match="width_high"):
        SearchSpace(width_range="auto", width_low=0.1, width_high=0.5)  # under a decade
    space = SearchSpace(width_range="auto")
    assert space.needs_range
    with pytest.raises(ValueError, match="measured"):
        space.grid_widths(4)
    measured = space.with_measured_range(0.05, 3.2)
    assert measured.grid_widths(2) == pytest.approx([0.05, 3.2])
    assert measured.describe_range() == f"widths 0.05-3.2 ({RULE})"
    base = {"job": {"name": "j"}, "data": {"dataset": "synthetic"}}
    job = job_from_dict({**base, "search": {"width_range": "auto"}})
    assert job.search.is_auto
    with pytest.raises(JobError, match=r"^\[search\] width_range:"):
        job_from_dict({**base, "search": {"width_range": "wide"}})
    with pytest.raises(JobError, match=r"^\[search\] measured_range: unknown field"):
        job_from_dict({**base, "search": {"width_range": "auto", "measured_range": [1, 2]}})


def test_optuna_auto_range_is_recorded_used_and_kept_on_resume(tmp_path):
    dataset = tiny_dataset()
    kwargs = dict(pairs=1, epochs=1, study_name="auto", output=tmp_path, sampler="random")
    report = tuning.tune(
        {"mlp": tiny_builder(dataset)},
        dataset,
        trials=2,
        width_range="auto",
        verbose=0,
        **kwargs,
    )
    recorded = report.metadata["auto_width_range"]["mlp"]
    low, high = recorded["low"], recorded["high"]
    assert (low, high) == pytest.approx(_measured_here(dataset))
    assert recorded["low_share"] == 0.01 and recorded["high_share"] == 0.9
    assert "quantile" in recorded["rule"]
    widths = [t.width for t in report.results["mlp"].candidates]
    assert len(widths) == 2 and all(low <= w <= high for w in widths)
    assert f"mlp: widths {low:.3g}-{high:.3g} ({RULE})" in report.summary()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["metadata"]["auto_width_range"]["mlp"]["low"] == pytest.approx(low)
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.load_study(study_name="auto/mlp", storage=storage)
    assert study.user_attrs[AUTO_RANGE_ATTR]["high"] == pytest.approx(high)

    # A resumed run searches the recorded range; it does not measure another. (The stored
    # range is moved here, so that only a run that reads it finds the new one.)
    moved = dict(study.user_attrs[AUTO_RANGE_ATTR], low=4.0, high=9.0)
    study.set_user_attr(AUTO_RANGE_ATTR, moved)
    again = tuning.tune(
        {"mlp": tiny_builder(dataset)},
        dataset,
        trials=3,
        width_range="auto",
        verbose=0,
        **kwargs,
    )
    assert again.metadata["auto_width_range"]["mlp"]["low"] == 4.0
    new = [t for t in again.results["mlp"].candidates if t.width not in widths]
    assert len(new) == 1 and 4.0 <= new[0].width <= 9.0


def test_keras_tuner_grid_spans_the_auto_range_and_resumes_it(tmp_path):
    pytest.importorskip("keras_tuner")
    dataset = tiny_dataset()
    kwargs = dict(
        backend="keras_tuner",
        sampler="grid",
        pairs=1,
        epochs=1,
        study_name="kt",
        output=tmp_path,
        width_range="auto",
        verbose=0,
    )
    report = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, trials=2, **kwargs)
    recorded = report.metadata["auto_width_range"]["mlp"]
    low, high = recorded["low"], recorded["high"]
    # The grid's two widths are the ends of the measured range.
    widths = sorted(t.width for t in report.results["mlp"].candidates)
    assert widths == pytest.approx([low, high])
    assert 0.01 <= low < high <= 10.0
    assert len(list(tmp_path.rglob("auto_width_range.json"))) == 1
    again = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, trials=2, **kwargs)
    assert again.metadata["auto_width_range"]["mlp"] == recorded
    assert again.results["mlp"].trials == report.results["mlp"].trials
