"""Ensembles: the averaged prediction, training each member as alone, ensemble PD, and ReLU
ensembles as reference points of the tuner (stored, reloaded, shown, described)."""

from __future__ import annotations

import csv
import json
import math

import keras
import numpy as np
import pytest

from keras_smelu import Ensemble, EnsembleLoss, ensemble_of, train_replicas
from keras_smelu._settings import SettingError
from keras_smelu.replicas import ReplicaSettings
from keras_smelu.tuning import SearchSpace, TrialRecord, TuningResult
from keras_smelu.tuning._plot import pareto_plot_info

# -------------------------------------------------------------------------- constructed cases


def _constant(value: float) -> keras.Model:
    """A compiled model whose prediction is `value` for every row."""
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros"),
        ]
    )
    model.layers[0].bias.assign([value])
    model.compile("sgd", "mean_squared_error")
    return model


@pytest.mark.backend
def test_the_prediction_is_exactly_the_members_mean_and_training_sees_each_member():
    values = [0.25, 0.5, 1.0, 0.75]  # exact in float32, as is their mean
    ensemble = ensemble_of([_constant(v) for v in values])
    x = np.ones((5, 3), "float32")
    np.testing.assert_array_equal(ensemble.predict(x, verbose=0), np.full((5, 1), 0.625))
    stacked = keras.ops.convert_to_numpy(ensemble(x, training=True))
    assert stacked.shape == (4, 5, 1)
    np.testing.assert_array_equal(stacked[:, 0, 0], values)
    assert ensemble.size == 4


def test_the_loss_sums_members_losses_in_training_and_scores_the_average_in_evaluation():
    y = np.array([[0.0], [1.0], [2.0]], "float32")
    members = np.array([[[1.0], [1.0], [1.0]], [[3.0], [3.0], [3.0]]], "float32")
    loss = EnsembleLoss("mean_squared_error", output_rank=2)
    expected_sum = sum(np.mean((m - y) ** 2) for m in members)
    assert float(loss(y, members)) == pytest.approx(expected_sum)
    mean = members.mean(axis=0)
    assert float(loss(y, mean)) == pytest.approx(np.mean((mean - y) ** 2))
    # Labels of shape (batch,) against outputs (batch, 1), as a loss given by name takes them.
    assert float(loss(y[:, 0], members)) == pytest.approx(expected_sum)
    # `evaluate` scores the averaged prediction with the member loss.
    ensemble = ensemble_of([_constant(1.0), _constant(3.0)])
    x = np.ones((3, 3), "float32")
    assert ensemble.evaluate(x, y, verbose=0) == pytest.approx(np.mean((2.0 - y) ** 2))


def _member(seed: int | None = None) -> keras.Model:
    init = keras.initializers.GlorotUniform(seed=seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                6,
                activation="relu",
                kernel_initializer=init,
                kernel_regularizer=keras.regularizers.L2(1e-3),
            ),
            keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.02),
        "binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def _click_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] - x[:, 1] + 0.5 * rng.normal(size=n) > 0).astype("float32")
    return x, y


@pytest.mark.backend
def test_training_an_ensemble_equals_training_its_members_separately():
    x, y = _click_data(64, 0)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, 64).astype("float32")
    members, alone = [], []
    for seed in (11, 12):
        for group in (members, alone):
            keras.utils.set_random_seed(seed)
            group.append(_member())
    ensemble = ensemble_of(members)
    fit = dict(sample_weight=weights, batch_size=16, epochs=2, shuffle=False, verbose=0)
    history = ensemble.fit(x, y, **fit)
    losses = [model.fit(x, y, **fit).history["loss"] for model in alone]
    # Each member made its own steps: bit for bit on JAX; TensorFlow's differently fused
    # program rounds a few weights in their last bits.
    atol = 0.0 if keras.backend.backend() == "jax" else 1e-6
    for member, model in zip(members, alone, strict=True):
        for a, b in zip(member.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    np.testing.assert_allclose(history.history["loss"], np.sum(losses, axis=0), rtol=1e-5)


def test_an_ensemble_saves_and_loads_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(3)
    ensemble = ensemble_of([_member(), _member()])
    x, y = _click_data(16, 2)
    ensemble.fit(x, y, epochs=1, verbose=0)
    before = ensemble.predict(x, verbose=0)
    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, Ensemble) and loaded.size == 2
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)
    assert loaded.get_compile_config()["loss"] == "binary_crossentropy"


def test_bad_ensembles_are_refused_naming_the_problem():
    with pytest.raises(SettingError, match="`ensemble` must be an integer >= 1"):
        ReplicaSettings(ensemble=0)
    with pytest.raises(ValueError, match="non-empty list"):
        Ensemble([])
    model = _member()
    with pytest.raises(ValueError, match="distinct models"):
        Ensemble([model, model])
    clipped = _member()
    clipped.compile(keras.optimizers.Adam(global_clipnorm=1.0), "binary_crossentropy")
    with pytest.raises(ValueError, match="global norm"):
        ensemble_of([clipped, _member()])
    with pytest.raises(SettingError, match="ensembles"):
        SearchSpace(ensembles=[1])
    with pytest.raises(SettingError, match="duplicate"):
        SearchSpace(ensembles=[2, 2])
    with pytest.raises(SettingError, match="reference"):
        SearchSpace(ensembles=[2], reference=False)
    assert SearchSpace(ensembles=[4, 2]).ensembles == (2, 4)


# ------------------------------------------------------------------------------- ensemble PD


def _build(activation):
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation=activation),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def _compiled(model):
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy")
    return model


def _fixed_builder(activation):
    """Every build identical whatever the global seed: an ensemble of identical members."""
    init = keras.initializers.GlorotUniform(seed=5)
    return _compiled(
        keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(6, activation=activation, kernel_initializer=init),
                keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init),
            ]
        )
    )


RUN = dict(pairs=1, epochs=1, batch_size=32, verbose=0)


def test_an_ensemble_of_identical_members_has_the_pd_of_one_model():
    train, evaluation = _click_data(128, 0), _click_data(64, 1)
    one = train_replicas(_fixed_builder, train, evaluation, **RUN)
    two = train_replicas(_fixed_builder, train, evaluation, ensemble=2, **RUN)
    assert one.pd_value > 0  # the data order alone separates the replicas
    np.testing.assert_allclose(two.pd_value, one.pd_value, rtol=1e-5)
    np.testing.assert_allclose(two.metrics["loss"], one.metrics["loss"], rtol=1e-5)
    assert (one.config["ensemble"], two.config["ensemble"]) == (1, 2)


def test_ensemble_replicas_train_alike_fused_or_not_and_start_from_the_single_model():
    train, evaluation = _click_data(128, 0), _click_data(64, 1)
    build = lambda activation: _compiled(_build(activation))  # noqa: E731
    single = train_replicas(build, train, evaluation, return_models=True, **RUN)
    runs = {
        fused: train_replicas(
            build, train, evaluation, ensemble=2, fused=fused, return_models=True, **RUN
        )
        for fused in (True, False)
    }
    assert runs[True].config["fused"] and not runs[False].config["fused"]
    assert runs[True].pd_value == pytest.approx(runs[False].pd_value, rel=1e-5)
    a, b = runs[False].models[:2]
    assert isinstance(a, Ensemble) and a.size == 2
    # With vary="data_order" the two ensembles' members start identical pairwise.
    digests = runs[False].pair_results[0]["initial_weights"]
    assert digests[0] == digests[1]
    for fused_model, model in zip(runs[True].models, runs[False].models, strict=True):
        for x, y in zip(fused_model.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-6)
    # Member 0 is built under the replica's own seed: it is the single-model replica.
    for x, y in zip(a.members[0].get_weights(), single.models[0].get_weights(), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)
    # Member 1 is another model: the ensemble averages two different predictions.
    assert not np.allclose(a.members[1].get_weights()[0], a.members[0].get_weights()[0])
    assert runs[False].pd_value != pytest.approx(single.pd_value, rel=1e-3)


# ---------------------------------------------------------------------- the report's words

PD_RELU = [0.10, 0.12, 0.09, 0.11, 0.10, 0.13]
NOISE = [1.00, 1.02, 0.99, 1.01, 0.98, 1.00]


def _record(number, pd_scale, *, family="smelu", width=0.5, ensemble=1, noise=NOISE):
    pds = [r * pd_scale * n for r, n in zip(PD_RELU, noise, strict=True)]
    pairs = [
        {
            "pair": k + 1,
            "pd": [{"relative": pd}],
            "replicas": [{"metrics": [{"loss": 0.5}]}, {"metrics": [{"loss": 0.5}]}],
        }
        for k, pd in enumerate(pds)
    ]
    return TrialRecord(
        number=number,
        model="m",
        family=family,
        width=width,
        accuracy=0.5,
        pd=float(np.mean(pds)),
        epoch=1,
        pairs=pairs,
        ensemble=ensemble,
    )


def _result(smelu_scale: float) -> TuningResult:
    shuffled = [1.01, 0.99, 1.02, 0.98, 1.00, 1.01]
    return TuningResult(
        model="m",
        trials=(
            _record(0, 1.0, family="relu", width=0.0, noise=[1.0] * 6),
            _record(1, smelu_scale),
            _record(-2, 0.8, family="relu", width=0.0, ensemble=2, noise=shuffled),
            _record(-4, 0.6, family="relu", width=0.0, ensemble=4, noise=shuffled[::-1]),
        ),
        max_accuracy_cost=0.01,
    )


def test_the_report_says_which_ensemble_size_the_recommended_width_matches():
    result = _result(0.6)  # the 4-ensemble's PD, at a quarter of its cost
    assert result.recommended.number == 1
    assert [t.number for t in result.ensembles] == [-2, -4]
    assert [t.ensemble for t in result.ensembles] == [2, 4]
    assert all(not t.is_ensemble for t in result.frontier + result.candidates)
    words = " ".join(result.to_dict()["ensemble_summary"])
    assert "a 2-ensemble of ReLU reaches PD x0.8" in words and "at 2x cost" in words
    assert "matches a 4-ensemble of ReLU in PD at a quarter of its cost" in words
    between = " ".join(_result(0.7).to_dict()["ensemble_summary"])
    assert "between a 2- and a 4-ensemble of ReLU" in between and "at half of the" in between
    table = result.frontier_table()
    assert "ens" in table and "relu x4" in table and "4x" in table and "cost" in table
    assert "matches a 4-ensemble" in table


def test_ensemble_records_round_trip_and_old_files_without_them_load(tmp_path):
    result = _result(0.6)
    path = result.to_json(tmp_path / "r.json")
    again = TuningResult.from_json(path)
    assert again.trials == result.trials and [t.cost for t in again.ensembles] == [2.0, 4.0]
    document = json.loads(path.read_text())
    assert [e["cost"] for e in document["result"]["ensembles"]] == [2.0, 4.0]
    assert "-2" in document["result"]["comparisons"]
    csv_path = result.to_csv(tmp_path / "t.csv")
    assert TuningResult.from_csv(csv_path).trials == result.trials

    # A file written before ensembles existed: no `ensemble` field, no derived entries.
    old = _result(0.6)
    old = TuningResult(old.model, old.trials[:2], max_accuracy_cost=0.01)
    document = {"format": "keras-smelu-tuning", "version": 1, "result": old.to_dict()}
    for key in ("ensembles", "ensemble_summary"):
        del document["result"][key]
    for trial in document["result"]["trials"]:
        del trial["ensemble"]
    (tmp_path / "old.json").write_text(json.dumps(document))
    loaded = TuningResult.from_json(tmp_path / "old.json")
    assert loaded.trials == old.trials and loaded.ensembles == []
    assert all(t.ensemble == 1 for t in loaded.trials)
    rows = list(csv.DictReader(old.to_csv(tmp_path / "old.csv").open()))
    with (tmp_path / "old-columns.csv").open("w", newline="") as handle:
        columns = [c for c in rows[0] if c != "ensemble"]
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert TuningResult.from_csv(tmp_path / "old-columns.csv").trials == old.trials


def test_the_plot_marks_the_ensembles_with_their_cost(tmp_path):
    pytest.importorskip("matplotlib")
    result = _result(0.6)
    info = pareto_plot_info(result)
    assert [(e[1], e[4]) for e in info.ensembles] == [(2, "ReLU x2"), (4, "ReLU x4")]
    assert -2 in info.intervals and -4 in info.intervals  # paired bars vs ReLU
    assert all(r[0] > 0 for r in info.response)  # the width response holds widths only
    assert result.plot(tmp_path / "p.png").stat().st_size > 0


# ------------------------------------------------------------------------------- the tuner


def test_the_tuner_stores_relu_ensembles_as_reference_points_and_resumes_them(tmp_path, capsys):
    from keras_smelu import tuning
    from keras_smelu.tuning._optuna_backend import load_result
    from keras_smelu.tuning._trial import TrialSettings
    from tests._tuning_fixtures import tiny_builder, tiny_dataset

    dataset = tiny_dataset()
    kwargs = dict(trials=1, pairs=1, epochs=1, study_name="ens", output=tmp_path, ensembles=[2])
    report = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, **kwargs)
    result = report.results["mlp"]
    (ensemble,) = result.ensembles
    assert (ensemble.number, ensemble.ensemble, ensemble.label, ensemble.cost) == (
        -2,
        2,
        "relu x2",
        2.0,
    )
    assert ensemble.seeds == result.reference.seeds  # the reference's pair seeds
    assert ensemble not in result.frontier and ensemble not in result.candidates
    assert ensemble.pd != result.reference.pd
    out = capsys.readouterr().out
    assert "[mlp] reference #-2 relu x2:" in out and "relu x2" in report.summary()
    saved = tuning.TuningReport.load(tmp_path).results["mlp"]
    assert saved.ensembles == [ensemble]
    assert (tmp_path / "frontier-mlp.png").stat().st_size > 0
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    settings = TrialSettings(ReplicaSettings(pairs=1, epochs=1))
    assert load_result(storage, "ens/mlp", "mlp", settings).ensembles == [ensemble]

    # A rerun trains nothing: the ensemble is read back from its study.
    again = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, **kwargs)
    assert again.results["mlp"].ensembles == [ensemble]
    assert "relu x2:" not in capsys.readouterr().out


def test_the_keras_tuner_backend_keeps_its_ensembles_in_the_project(tmp_path):
    pytest.importorskip("keras_tuner")
    from keras_smelu import tuning
    from tests._tuning_fixtures import tiny_builder, tiny_dataset

    dataset = tiny_dataset()
    kwargs = dict(
        trials=1,
        pairs=1,
        epochs=1,
        study_name="kt",
        output=tmp_path,
        backend="keras_tuner",
        ensembles=[2],
        verbose=0,
    )
    result = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, **kwargs).results["mlp"]
    (ensemble,) = result.ensembles
    assert ensemble.number == -2 and ensemble.is_complete
    assert math.isfinite(ensemble.pd) and ensemble.seeds == result.reference.seeds
    files = list(tmp_path.rglob("reference-x2.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, **kwargs).results["mlp"]
    assert again.ensembles == [ensemble] and files[0].stat().st_mtime_ns == stamp


def test_job_files_take_ensembles_in_search_not_in_training(tmp_path):
    from keras_smelu.tuning import load_job
    from keras_smelu.tuning._job import JobError
    from tests._tuning_fixtures import write_job

    path = write_job(tmp_path)
    text = path.read_text()
    path.write_text(text + "\n[search]\nensembles = [4, 2]\n")
    job = load_job(path)
    assert job.search_space().ensembles == (2, 4)
    assert job.trial_settings().training.ensemble == 1
    path.write_text(text + "ensemble = 2\n")  # the [training] table ends the file
    with pytest.raises(JobError, match=r"\[training\] ensemble: unknown field"):
        load_job(path)


def test_an_ensemble_reference_point_is_not_exported_as_one_model():
    from keras_smelu.tuning._export import select_trial

    result = _result(0.6)
    with pytest.raises(ValueError, match="relu x2 reference point"):
        select_trial(result, -2)
    assert select_trial(result, 0).is_reference
    with pytest.raises(ValueError, match="relu x4 reference point"):
        result.recommended_activation(-4)
