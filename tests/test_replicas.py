"""Tests for keras_smelu.replicas: real Keras training of tiny models on tiny data."""

from __future__ import annotations

import itertools
import json

import keras
import numpy as np
import pytest

from keras_smelu.replicas import NonFiniteLossError, ReplicaReport, train_replicas
from tests._backend import weights_equal

N_TRAIN, N_EVAL, N_FEATURES = 192, 64, 5


def _binary_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_TRAIN + N_EVAL, N_FEATURES)).astype("float32")
    logit = x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] ** 2 + rng.normal(size=len(x))
    y = (logit > 0.3).astype("float32")
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


TRAIN, EVAL = _binary_data()


def build_binary(activation, dropout=0.0, learning_rate=0.02, loss="binary_crossentropy"):
    layers = [keras.Input((N_FEATURES,)), keras.layers.Dense(8, activation=activation)]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def build_with_dropout(activation):
    return build_binary(activation, dropout=0.3)


# ------------------------------------------------------------------------------------------
# Protocol


@pytest.mark.backend
def test_fixed_everything_is_bit_identical():
    report = train_replicas(
        build_with_dropout,
        TRAIN,
        EVAL,
        vary="none",
        epochs=2,
        batch_size=32,
        verbose=0,
        return_models=True,
    )
    a, b = report.models
    assert a is not b
    assert weights_equal(a, b)
    assert report.task == "binary"
    for entry in report.history:
        assert all(value == 0.0 for value in entry["pd"].values()), entry["pd"]
    assert report.pd_value == 0.0
    assert report.epoch == 2  # report_epoch="last"
    replicas = report.pair_results[0]["replicas"]
    assert replicas[0]["metrics"] == replicas[1]["metrics"]
    assert replicas[0]["train_loss"] == replicas[1]["train_loss"]
    seeds = report.seeds["pairs"][0]
    assert seeds["init"][0] == seeds["init"][1] and seeds["order"][0] == seeds["order"][1]


def test_data_order_same_start_different_end_and_report_structure():
    report = train_replicas(
        build_binary,
        TRAIN,
        EVAL,
        activation="relu",
        vary="data_order",
        epochs=2,
        batch_size=32,
        report_epoch="best",
        verbose=0,
        return_models=True,
    )
    assert isinstance(report, ReplicaReport)
    pair = report.pair_results[0]
    # Identical initial weights, different data order, different final replicas.
    assert pair["initial_weights"][0] == pair["initial_weights"][1]
    assert pair["seeds"]["init"][0] == pair["seeds"]["init"][1]
    assert pair["seeds"]["order"][0] != pair["seeds"]["order"][1]
    assert not weights_equal(*report.models)
    assert report.pd["relative"] > 0.0
    assert report.pd_kind == "relative" and report.pd_value == report.pd["relative"]

    # Structure.
    assert set(report.pd) == {
        "relative",
        "absolute",
        "relative_shift_corrected",
        "absolute_shift_corrected",
        "top1",
    }
    assert set(report.pd_std) == set(report.pd)
    assert {"loss", "auc"} <= set(report.metrics) and set(report.metrics_std) == set(report.metrics)
    assert len(report.history) == 2 and [h["epoch"] for h in report.history] == [1, 2]
    assert len(pair["pd"]) == 2 and len(pair["replicas"]) == 2
    assert [r["replica"] for r in pair["replicas"]] == ["a", "b"]
    assert len(pair["replicas"][0]["metrics"]) == 2
    assert report.activation == "relu"
    assert report.config["vary"] == "data_order"
    assert report.config["backend"] == keras.backend.backend()
    assert 0.0 < report.train_seconds <= report.wall_seconds

    # "best" is the epoch with the lowest eval loss averaged over replicas.
    losses = [h["metrics"]["loss"] for h in report.history]
    assert report.epoch == int(np.argmin(losses)) + 1
    assert report.metrics == report.history[report.epoch - 1]["metrics"]
    mean_loss = np.mean([r["metrics"][report.epoch - 1]["loss"] for r in pair["replicas"]])
    assert report.metrics["loss"] == pytest.approx(mean_loss)
    assert report.pd == pair["pd"][report.epoch - 1]  # one pair: mean over pairs is itself

    # JSON-friendly, without the models.
    data = json.loads(json.dumps(report.to_dict()))
    assert "models" not in data and data["pd_kind"] == "relative"


class _EpochCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_init_variation_and_callbacks_and_progress_lines(capsys):
    counter = _EpochCounter()
    report = train_replicas(
        build_binary,
        TRAIN,
        EVAL,
        vary="init",
        epochs=1,
        batch_size=64,
        callbacks=[counter],
        verbose=2,
    )
    pair = report.pair_results[0]
    assert pair["initial_weights"][0] != pair["initial_weights"][1]
    assert pair["seeds"]["order"][0] == pair["seeds"]["order"][1]
    assert report.pd["relative"] > 0.0
    assert counter.epochs == 2  # one epoch per replica
    out = capsys.readouterr().out
    assert "pair 1/1 replica a: epoch 1/1" in out and "pair 1/1 replica b: epoch 1/1" in out
    assert report.models is None


# How `fused` replicas of one architecture train on each backend: one replica's step shared.
ONE_PROGRAM = {"jax": "vectorized", "tensorflow": "shared step"}


@pytest.mark.backend
@pytest.mark.parametrize("verbose", [1, 2])
def test_replicas_trained_as_one_program_show_their_progress(capsys, verbose):
    report = train_replicas(build_binary, TRAIN, EVAL, epochs=2, batch_size=64, verbose=verbose)
    out = capsys.readouterr().out
    steps = -(-len(TRAIN[1]) // 64)
    # One bar per checkpoint for all replicas, ending with their mean training loss.
    assert f"{steps}/{steps}" in out and out.count("mean replica loss") == 2, out
    assert "pair 1/1: relative PD" in out
    assert report.config["program"] == ONE_PROGRAM[keras.backend.backend()]


def test_common_random_numbers_across_calls_with_tf_data():
    tf = pytest.importorskip("tensorflow")
    train = tf.data.Dataset.from_tensor_slices(TRAIN)  # unbatched: example-level shuffle
    evaluation = tf.data.Dataset.from_tensor_slices(EVAL).batch(16)  # already batched
    kwargs = dict(vary="both", epochs=1, batch_size=32, verbose=0, seed=7)
    first = train_replicas(build_binary, train, evaluation, **kwargs)
    second = train_replicas(build_binary, train, evaluation, **kwargs)
    assert first.seeds == second.seeds
    assert first.pd == second.pd and first.metrics == second.metrics
    assert first.pd["relative"] > 0.0
    assert first.task == "binary"
    assert first.config["fused"] is False  # datasets train one replica after the other
    with pytest.raises(ValueError, match="`fused=True`, but .*tf.data.Dataset"):
        train_replicas(build_binary, train, evaluation, fused=True, **kwargs)


def test_tf_data_batch_detection():
    tf = pytest.importorskip("tensorflow")
    from keras_smelu._replica_data import is_batched as _is_batched

    ds = tf.data.Dataset.from_tensor_slices(TRAIN)
    assert not _is_batched(ds)
    assert _is_batched(ds.batch(8))
    assert _is_batched(ds.batch(8, drop_remainder=True).map(lambda x, y: (x, y)).prefetch(1))
    assert not _is_batched(ds.batch(8).unbatch())


def test_clone_compiled_model():
    original = build_binary("relu")
    report = train_replicas(
        original,
        TRAIN,
        EVAL,
        activation=None,
        vary="none",
        batch_size=64,
        verbose=0,
        return_models=True,
    )
    assert all(m is not original for m in report.models)
    assert {"loss", "auc"} <= set(report.metrics)
    assert report.pd_value == 0.0
    assert "as built in model" in report.activation


def test_dict_inputs_regression():
    rng = np.random.default_rng(1)
    n = N_TRAIN + N_EVAL
    x = {
        "user": rng.normal(size=(n, 3)).astype("float32"),
        "item": rng.normal(size=(n, 2)).astype("float32"),
    }
    y = (3.0 + x["user"][:, 0] - x["item"][:, 1] + 0.1 * rng.normal(size=n)).astype("float32")

    def build(activation):
        user = keras.Input((3,), name="user")
        item = keras.Input((2,), name="item")
        h = keras.layers.Concatenate()([user, item])
        h = keras.layers.Dense(8, activation=activation)(h)
        model = keras.Model({"user": user, "item": item}, keras.layers.Dense(1)(h))
        model.compile(keras.optimizers.Adam(0.02), "mse", metrics=["mae"])
        return model

    def split(s):
        return {k: v[s] for k, v in x.items()}, y[s]

    report = train_replicas(
        build, split(slice(0, N_TRAIN)), split(slice(N_TRAIN, None)), batch_size=32, verbose=0
    )
    assert report.task == "regression"
    assert report.pd_kind == "relative_to_mean"  # "relative" on regression
    assert set(report.pd) == {
        "absolute",
        "relative_to_mean",
        "absolute_shift_corrected_identity",
        "relative_to_mean_shift_corrected",
    }
    assert report.pd_value > 0.0 and {"loss", "mae"} <= set(report.metrics)


def test_multiclass():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(N_TRAIN + N_EVAL, N_FEATURES)).astype("float32")
    y = np.argmax(x[:, :3] + 0.3 * rng.normal(size=(len(x), 3)), axis=1)

    def build(activation):
        model = keras.Sequential(
            [
                keras.Input((N_FEATURES,)),
                keras.layers.Dense(8, activation=activation),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    report = train_replicas(
        build,
        (x[:N_TRAIN], y[:N_TRAIN]),
        (x[N_TRAIN:], y[N_TRAIN:]),
        pd="total_variation",
        batch_size=32,
        verbose=0,
    )
    assert report.task == "multiclass"
    assert set(report.pd) == {"total_variation", "top1", "absolute", "relative"}
    assert report.pd_value == report.pd["total_variation"] > 0.0


# ------------------------------------------------------------------------------------------
# Failures


def test_non_finite_loss_raises():
    def build(activation):
        return build_binary(activation, loss=lambda y_true, y_pred: keras.ops.log(y_pred - 2.0))

    with pytest.raises(NonFiniteLossError, match="pair 1, replica a, epoch 1") as info:
        train_replicas(build, TRAIN, EVAL, batch_size=64, verbose=0)
    assert isinstance(info.value, ArithmeticError)
    assert info.value.epoch == 1 and info.value.pair == 1 and info.value.replica == "a"
    assert np.isnan(info.value.value)


def test_logit_outputs_with_binary_labels_raise():
    def build(activation):
        model = keras.Sequential([keras.Input((N_FEATURES,)), keras.layers.Dense(1)])
        model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
        return model

    with pytest.raises(ValueError, match="logits"):
        train_replicas(build, TRAIN, EVAL, batch_size=64, verbose=0)


def test_non_deterministic_builder_raises():
    counter = itertools.count()

    def build(activation):
        init = keras.initializers.GlorotUniform(seed=next(counter))
        model = keras.Sequential(
            [keras.Input((N_FEATURES,)), keras.layers.Dense(1, kernel_initializer=init)]
        )
        model.compile("sgd", "mse")
        return model

    with pytest.raises(RuntimeError, match="not deterministic"):
        train_replicas(build, TRAIN, EVAL, verbose=0)


def test_builder_contract_errors():
    uncompiled = keras.Sequential([keras.Input((N_FEATURES,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="uncompiled"):
        train_replicas(lambda activation: uncompiled, TRAIN, EVAL, verbose=0)
    shared = build_binary("relu")
    with pytest.raises(ValueError, match="same model object twice"):
        train_replicas(lambda activation: shared, TRAIN, EVAL, verbose=0)
    with pytest.raises(TypeError, match="must return a compiled keras.Model"):
        train_replicas(lambda activation: "model", TRAIN, EVAL, verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pairs": 0}, r"`pairs` must be an integer >= 1; received: pairs=0"),
        ({"pairs": 1.5}, r"`pairs` must be an integer"),
        ({"pairs": True}, r"`pairs` must be an integer"),
        ({"epochs": 0}, r"`epochs` must be an integer >= 1"),
        ({"batch_size": 0}, r"`batch_size` must be an integer >= 1"),
        ({"seed": -1}, r"`seed` must be an integer >= 0"),
        ({"vary": "order"}, r"`vary` must be one of \['data_order', 'init', 'both', 'none'\]"),
        ({"report_epoch": "first"}, r"`report_epoch` must be one of \['last', 'best'\]"),
        ({"pd": "nope"}, r"`pd` must be one of"),
        ({"task": "ranking"}, r"`task` must be one of"),
        ({"verbose": 5}, r"`verbose` must be"),
        ({"eval_data": None}, r"`eval_data` is required"),
        ({"train_data": (np.zeros((4, 5)), np.zeros(3))}, r"same number of rows"),
        ({"train_data": np.zeros((4, 5))}, r"`train_data` must be an `\(x, y\)`"),
        ({"model": 3}, r"`model` must be a builder"),
        ({"model": "compiled", "activation": "smelu"}, r"pass activation=None"),
        ({"task": "binary", "pd": "relative_to_mean"}, r"not measured for a binary task"),
        ({"fused": "yes"}, r"`fused` must be True, False or 'auto'; received: fused='yes'"),
        ({"fused": 1}, r"`fused` must be True, False or 'auto'"),
    ],
)
def test_argument_validation(kwargs, match):
    args = {"model": build_binary, "train_data": TRAIN, "eval_data": EVAL, "verbose": 0}
    args.update(kwargs)
    if args["model"] == "compiled":
        args["model"] = build_binary("relu")
    with pytest.raises(ValueError, match=match):
        train_replicas(args.pop("model"), args.pop("train_data"), args.pop("eval_data"), **args)


# ------------------------------------------------------------------------------------------
# Fused pairs


def _weighted(data):
    x, y = data
    return x, y, np.linspace(0.5, 1.5, len(y)).astype("float32")


@pytest.mark.backend
@pytest.mark.parametrize("vary", ["data_order", "both"])
def test_stacked_replicas_equal_sequential_ones(vary):
    # All 6 replicas of 3 pairs in one program. Dropout (per-layer seed generators) and sample
    # weights included: the stack must give each replica the batches, dropout masks and
    # optimizer steps it gets alone.
    runs = {
        fused: train_replicas(
            build_with_dropout,
            _weighted(TRAIN),
            EVAL,
            vary=vary,
            pairs=3,
            epochs=2,
            batch_size=32,
            verbose=0,
            return_models=True,
            fused=fused,
        )
        for fused in (True, False)
    }
    fused, sequential = runs[True], runs[False]
    assert fused.config["fused"] is True and sequential.config["fused"] is False
    assert fused.config["stacked"] == 6 and sequential.config["stacked"] == 1
    # One replica's step shared by all six: mapped over them (JAX) or traced once (TF).
    assert fused.config["program"] == ONE_PROGRAM.get(keras.backend.backend(), "stack")
    assert sequential.config["program"] == "sequential"
    assert len(fused.models) == 6
    for one, other in zip(fused.models, sequential.models, strict=True):
        assert weights_equal(one, other)
    # Pairs differ from each other (each its own seeds), so equality above is no accident.
    assert not weights_equal(fused.models[0], fused.models[2])
    assert fused.pd == sequential.pd and fused.pd_value > 0.0
    assert [p["pd"] for p in fused.pair_results] == [p["pd"] for p in sequential.pair_results]
    for one, other in zip(fused.pair_results, sequential.pair_results, strict=True):
        for rep_f, rep_s in zip(one["replicas"], other["replicas"], strict=True):
            assert rep_f["metrics"] == rep_s["metrics"]
            np.testing.assert_allclose(rep_f["train_loss"], rep_s["train_loss"], rtol=1e-5)


def test_fused_auto_falls_back_where_one_program_would_not_be_exact():
    def clipped(activation):
        model = build_binary(activation)
        model.compile(keras.optimizers.Adam(0.02, global_clipnorm=1.0), "binary_crossentropy")
        return model

    report = train_replicas(clipped, TRAIN, EVAL, batch_size=32, verbose=0)
    assert report.config["fused"] is False and report.config["stacked"] == 1
    assert report.pd_value > 0.0
    assert train_replicas(build_binary, TRAIN, EVAL, verbose=0).config["fused"] is True
    with pytest.raises(ValueError, match="`fused=True`, but .*clips by global norm"):
        train_replicas(clipped, TRAIN, EVAL, verbose=0, fused=True)
    with pytest.raises(ValueError, match="`fused=True`, but .*callbacks are given"):
        train_replicas(
            build_binary,
            TRAIN,
            EVAL,
            verbose=0,
            fused=True,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )


@pytest.mark.backend
def test_fused_auto_shares_a_step_and_stacks_only_where_it_pays():
    backend = keras.backend.backend()
    report = train_replicas(build_binary, TRAIN, EVAL, epochs=1, verbose=0)
    assert report.config["fused"] is True and report.config["stacked"] == 2
    assert report.config["program"] == ONE_PROGRAM[backend]
    # Replicas that differ in a layer setting cannot share one step. Side by side in one model
    # they train faster on JAX; on TensorFlow that graph traced as slowly as one replica after
    # the other, so "auto" trains them apart there.
    rates = iter([0.1, 0.5])
    report = train_replicas(
        lambda a: build_binary(a, dropout=next(rates)), TRAIN, EVAL, epochs=1, verbose=0
    )
    assert report.config["program"] == ("stack" if backend == "jax" else "sequential")


@pytest.mark.backend
def test_a_shared_step_that_reads_a_variable_of_its_own_is_refused():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the traced step's captured variables are TensorFlow's")
    import tensorflow as tf

    class RawScale(keras.layers.Layer):  # a raw tf.Variable: not among the model's variables
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.scale = tf.Variable(1.0, trainable=False)

        def call(self, inputs):
            return inputs * self.scale

    def build(activation):
        model = keras.Sequential(
            [
                keras.Input((N_FEATURES,)),
                keras.layers.Dense(4, activation=activation),
                RawScale(),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile("adam", "binary_crossentropy")
        return model

    with pytest.raises(ValueError, match="reads 1 variable.* not the model's"):
        train_replicas(build, TRAIN, EVAL, epochs=1, verbose=0, fused=True)
    runs = {
        fused: train_replicas(build, TRAIN, EVAL, epochs=1, verbose=0, return_models=True,
                              fused=fused)
        for fused in ("auto", False)
    }  # fmt: skip
    assert runs["auto"].config["program"] == "sequential"  # refused before a step, then apart
    for one, other in zip(runs["auto"].models, runs[False].models, strict=True):
        assert weights_equal(one, other)


def test_replicas_with_different_optimizers_do_not_stack():
    calls = []

    def drifting(activation):  # a builder whose learning rate changes from call to call
        calls.append(None)
        return build_binary(activation, learning_rate=0.01 * len(calls))

    with pytest.raises(ValueError, match="`fused=True`, but .*optimizers differ"):
        train_replicas(drifting, TRAIN, EVAL, vary="both", verbose=0, fused=True)
    report = train_replicas(drifting, TRAIN, EVAL, vary="both", epochs=1, verbose=0)
    assert report.config["fused"] is False and report.config["stacked"] == 1


@pytest.mark.backend
def test_replicas_that_differ_in_a_layer_setting_are_not_vectorized():
    # Same variables, same optimizer, but each replica its own dropout rate: one replica's
    # step mapped over all would apply the first one's rate to every replica. They train side
    # by side instead, each as it would alone.
    rates = iter([0.1, 0.5, 0.2, 0.4] * 2)

    def varying(activation):
        return build_binary(activation, dropout=next(rates))

    runs = {
        fused: train_replicas(
            varying,
            TRAIN,
            EVAL,
            pairs=2,
            epochs=1,
            batch_size=32,
            verbose=0,
            return_models=True,
            fused=fused,
        )
        for fused in (True, False)
    }
    assert runs[True].config["program"] == "stack"
    for one, other in zip(runs[True].models, runs[False].models, strict=True):
        assert weights_equal(one, other)
    assert runs[True].pd == runs[False].pd


def test_a_layer_shared_across_pairs_is_refused():
    shared = keras.layers.Dense(4, name="shared_tower")
    calls = []

    def every_other_pair(activation):  # pairs 1 and 2 share their first replica's layer
        calls.append(None)
        first = len(calls) % 2 == 1
        hidden = shared if first else keras.layers.Dense(4)
        model = keras.Sequential(
            [keras.Input((N_FEATURES,)), hidden, keras.layers.Dense(1, activation="sigmoid")]
        )
        model.compile("adam", "binary_crossentropy")
        return model

    with pytest.raises(ValueError, match="share .*shared_tower"):
        train_replicas(every_other_pair, TRAIN, EVAL, vary="both", pairs=2, verbose=0)
