"""The keras-tuner backend (keras_smelu.tuning._keras_tuner_backend): real keras-tuner, real
training on a tiny synthetic click log (1 pair, 1 epoch, a few trials)."""

from __future__ import annotations

import json
import math

import keras
import pytest

pytest.importorskip("keras_tuner")

from keras_smelu.datasets import make_synthetic_click_log  # noqa: E402
from keras_smelu.models import embedding_mlp  # noqa: E402
from keras_smelu.replicas import ReplicaSettings  # noqa: E402
from keras_smelu.tuning._keras_tuner_backend import (  # noqa: E402
    RECORD_FILE,
    REFERENCE_FILE,
    SmoothnessHyperModel,
    SmoothnessTuner,
    load_result,
    takes_hp,
    tune_keras_tuner,
)
from keras_smelu.tuning._space import SearchSpace  # noqa: E402
from keras_smelu.tuning._trial import TrialSettings  # noqa: E402
from tests.reference import brute_force_front  # noqa: E402

SETTINGS = TrialSettings(ReplicaSettings(pairs=1, epochs=1, batch_size=64))
NAMES = SETTINGS.objective_names


@pytest.fixture(scope="module")
def data():
    return make_synthetic_click_log(n_train=256, n_test=128, n_users=50, n_items=40)


def counting_builder(data, calls):
    def builder(activation):
        calls.append(activation)
        return embedding_mlp(data, activation, hidden=(8,), embedding_dim=4)

    return builder


def width_of(activation) -> float | None:
    return activation.get_config().get("beta")


def trial_json(directory, project, trial_id):
    return json.loads((directory / project / f"trial_{trial_id}" / "trial.json").read_text())


def test_search_then_resume(data, tmp_path):
    calls, progress = [], []
    space = SearchSpace(families=("smelu",), width_low=0.05, width_high=5.0)
    kwargs = dict(
        space=space,
        settings=SETTINGS,
        directory=tmp_path,
        seed=3,
        verbose=0,
        progress=lambda record, done, total: progress.append((record.number, done, total)),
    )
    result = tune_keras_tuner(
        "mlp", counting_builder(data, calls), data.train, data.test, trials=2, **kwargs
    )

    # One ReLU model for the study's fingerprint, then the reference and two search trials,
    # each trained once (one pair: two replicas).
    assert calls.pop(0) == "relu"
    assert len(calls) == 3 * 2
    assert [t.number for t in result.trials] == [0, 1, 2]
    assert [t.trial_id for t in result.trials] == [None, 0, 1]
    assert result.reference is not None and result.reference.number == 0
    assert all(t.is_complete for t in result.trials)
    assert [t.family for t in result.trials] == ["relu", "smelu", "smelu"]
    for t in result.candidates:
        assert 0.05 <= t.width <= 5.0
        assert width_of(calls[2 * t.number]) == pytest.approx(t.width)
    assert result.objective_names == NAMES and result.directions == SETTINGS.directions
    assert result.study_name == "mlp" and result.model == "mlp"
    for t in result.trials:
        assert math.isfinite(t.accuracy) and math.isfinite(t.pd)
        assert t.accuracy == t.metrics[NAMES[0]] and t.pd == t.metrics[NAMES[1]]
    # keras-tuner holds both objectives (and their sum, its MultiObjective) per trial.
    for t in result.candidates:
        metrics = trial_json(tmp_path, "mlp", t.trial_id)["metrics"]["metrics"]
        assert {NAMES[0], NAMES[1], "multi_objective"} <= set(metrics)
    # Our frontier is the non-dominated set of the trials.
    trials = result.complete_trials
    on_front = brute_force_front([t.values for t in trials], result.directions)
    assert sorted(t.number for t in result.frontier) == sorted(
        t.number for t, on in zip(trials, on_front, strict=True) if on
    )
    assert progress == [(0, 0, 2), (1, 1, 2), (2, 2, 2)]
    assert load_result(tmp_path, "mlp", "mlp", SETTINGS, space) == result

    # Resume with one more trial: nothing already done is trained again.
    reference_file = tmp_path / "mlp" / REFERENCE_FILE
    reference_stamp = reference_file.stat().st_mtime_ns
    calls.clear()
    resumed = tune_keras_tuner(
        "mlp", counting_builder(data, calls), data.train, data.test, trials=3, **kwargs
    )
    assert calls.pop(0) == "relu" and len(calls) == 2
    assert reference_file.stat().st_mtime_ns == reference_stamp
    assert resumed.trials[:3] == result.trials
    assert [t.number for t in resumed.trials] == [0, 1, 2, 3]
    assert width_of(calls[0]) == pytest.approx(resumed.trials[3].width)

    # As many trials as the project holds: nothing runs.
    calls.clear()
    again = tune_keras_tuner(
        "mlp", counting_builder(data, calls), data.train, data.test, trials=3, **kwargs
    )
    assert calls == ["relu"] and again == resumed


def test_diverging_width_fails_and_search_goes_on(data, tmp_path, capsys):
    def builder(activation):
        # The narrowest width trains with an absurd learning rate: the loss becomes NaN.
        rate = 1e38 if width_of(activation) < 0.1 else 1e-3
        optimizer = keras.optimizers.Adam(rate)
        return embedding_mlp(data, activation, hidden=(8,), embedding_dim=4, optimizer=optimizer)

    space = SearchSpace(width_low=0.05, width_high=5.0, reference=False)
    result = tune_keras_tuner(
        "mlp",
        builder,
        data.train,
        data.test,
        space,
        SETTINGS,
        trials=3,
        directory=tmp_path,
        sampler="grid",
        verbose=1,
    )
    widths = space.grid_widths(3)
    assert [t.width for t in result.trials] == pytest.approx(widths)  # grid order
    failed, *complete = result.trials
    assert not failed.is_complete and failed.width == pytest.approx(0.05)
    assert "Non-finite" in failed.fail_reason and failed.accuracy is None
    assert all(t.is_complete for t in complete)
    assert result.reference is None
    assert [t.number for t in result.frontier] != [] and failed not in result.frontier
    assert trial_json(tmp_path, "mlp", 0)["status"] == "FAILED"
    assert (tmp_path / "mlp" / "trial_0" / RECORD_FILE).exists()
    captured = capsys.readouterr()
    assert "Trial 0 failed: Non-finite" in captured.out
    assert "Traceback" not in captured.err  # keras-tuner's DEBUG traceback is silenced


def test_builder_with_its_own_hyperparameters(data, tmp_path):
    units = []

    def builder(activation, hp):
        n = hp.Choice("units", [4, 6])
        units.append(n)
        return embedding_mlp(data, activation, hidden=(n,), embedding_dim=4)

    space = SearchSpace(families=("smelu", "generalized_smelu"), reference=False)
    result = tune_keras_tuner(
        "mlp",
        builder,
        data.train,
        data.test,
        space,
        SETTINGS,
        trials=2,
        directory=tmp_path,
        project_name="own-hp",
        sampler="grid",
        verbose=0,
    )
    assert result.study_name == "own-hp"
    assert [t.is_complete for t in result.trials] == [True, True]
    values = [
        trial_json(tmp_path, "own-hp", t.trial_id)["hyperparameters"]["values"]
        for t in result.trials
    ]
    # The grid varies the last-declared hyperparameter first: the builder's own.
    assert [v["units"] for v in values] == [4, 6]
    assert [v["family"] for v in values] == ["smelu", "smelu"]
    assert all("slope_left" not in v for v in values)  # inactive for SmeLU
    assert units[-4:] == [4, 4, 6, 6]  # each trial's two replicas, built with its value


def test_search_point_hyperparameters():
    import keras_tuner

    space = SearchSpace(families=("smelu", "generalized_smelu"), slope_left_high=0.2)
    model = SmoothnessHyperModel(lambda activation: None, space)
    hp = keras_tuner.HyperParameters()
    point = model.declare(hp)
    assert [p.name for p in hp.space] == ["width", "family", "slope_left"]
    assert point.family == "smelu" and point.params == {}
    hp.values["family"] = "generalized_smelu"
    hp.values["width"] = 0.3
    hp.values["slope_left"] = 0.15
    point = model.declare(hp)
    assert (point.family, point.width, dict(point.params)) == (
        "generalized_smelu",
        0.3,
        {"slope_left": 0.15},
    )
    only_g = SmoothnessHyperModel(lambda a: None, SearchSpace(families=("generalized_smelu",)))
    hp = keras_tuner.HyperParameters()
    assert only_g.declare(hp).params == {"slope_left": 0.0}
    assert [p.name for p in hp.space] == ["width", "slope_left"]
    grid = SmoothnessHyperModel(lambda a: None, space, widths=[0.1, 1.0])
    hp = keras_tuner.HyperParameters()
    grid.declare(hp)
    assert list(hp.space[0].values) == [0.1, 1.0]


def test_crashed_trial_stops_search_and_runs_again_on_resume(data, tmp_path):
    def broken(activation):
        raise RuntimeError("bug in the builder")

    space = SearchSpace(reference=False)
    kwargs = dict(directory=tmp_path, trials=1, seed=5, verbose=0)
    with pytest.raises(RuntimeError, match="bug in the builder"):
        tune_keras_tuner("mlp", broken, data.train, data.test, space, SETTINGS, **kwargs)
    assert trial_json(tmp_path, "mlp", 0)["status"] == "RUNNING"
    drawn = trial_json(tmp_path, "mlp", 0)["hyperparameters"]["values"]["width"]
    assert load_result(tmp_path, "mlp", "mlp", SETTINGS).trials == ()

    calls = []
    result = tune_keras_tuner(
        "mlp", counting_builder(data, calls), data.train, data.test, space, SETTINGS, **kwargs
    )
    assert [(t.trial_id, t.state) for t in result.trials] == [(0, "complete")]
    assert result.trials[0].width == drawn  # the interrupted trial, run again


def test_timeout_stops_starting_trials(data, tmp_path):
    space = SearchSpace(reference=False)
    result = tune_keras_tuner(
        "mlp",
        counting_builder(data, []),
        data.train,
        data.test,
        space,
        SETTINGS,
        trials=3,
        directory=tmp_path,
        timeout=1e-9,
        verbose=0,
    )
    assert len(result.trials) == 1


def test_resume_checks_the_project_settings(tmp_path):
    def builder(activation):
        raise AssertionError("not built")

    space = SearchSpace()
    kwargs = dict(model_name="mlp", trials=2, directory=tmp_path)
    SmoothnessTuner(builder, space, SETTINGS, **kwargs)
    SmoothnessTuner(builder, space, SETTINGS, **kwargs)  # same settings: resumes
    other = TrialSettings(ReplicaSettings(pairs=2, epochs=1, batch_size=64))
    with pytest.raises(ValueError, match=r"settings\.pairs: 1 -> 2"):
        SmoothnessTuner(builder, space, other, **kwargs)
    with pytest.raises(ValueError, match=r"space\.width_high"):
        SmoothnessTuner(builder, SearchSpace(width_high=3.0), SETTINGS, **kwargs)
    tuner = SmoothnessTuner(builder, space, other, overwrite=True, **kwargs)
    with pytest.raises(NotImplementedError, match="keeps no trained models"):
        tuner.load_model(None)


def test_bad_arguments(tmp_path):
    def builder(activation):
        raise AssertionError("not built")

    kwargs = dict(model_name="mlp", directory=tmp_path)
    with pytest.raises(ValueError, match="sampler"):
        SmoothnessTuner(builder, SearchSpace(), SETTINGS, trials=2, sampler="tpe", **kwargs)
    with pytest.raises(ValueError, match="trials"):
        SmoothnessTuner(builder, SearchSpace(), SETTINGS, trials=0, **kwargs)
    with pytest.raises(ValueError, match="width_low"):
        SmoothnessTuner(builder, SearchSpace(width_low=0.0), SETTINGS, trials=2, **kwargs)


def test_takes_hp():
    def one(activation):
        pass

    def two(activation, hp):
        pass

    def named(activation, *, hp=None):
        pass

    def optional(activation, units=8):
        pass

    assert not takes_hp(one) and not takes_hp(optional) and not takes_hp(print)
    assert takes_hp(two) and takes_hp(named) and takes_hp(lambda a, b: None)
