"""Tests for keras_smelu.diagnostics: pre-activation statistics and the automatic width range."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_smelu
from keras_smelu.diagnostics import ActivationStats, auto_width_range, inspect_activations

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 3)).astype("float32")
KERNEL = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.0]], dtype="float32")
BIAS = np.array([0.1, -0.2], dtype="float32")
# The first layer's pre-activations, known exactly.
PRE = X.astype(np.float64) @ KERNEL + BIAS


def _known_model():
    """Dense(relu) with hand-set weights, an identity Dense, then a SmeLU layer."""
    inner = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(2, name="scale"),
            keras_smelu.SmeLU(beta=0.5, name="smelu"),
        ],
        name="inner",
    )
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, activation="relu", name="first")(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(inner(hidden))
    model = keras.Model(inputs, outputs)
    model.get_layer("first").set_weights([KERNEL, BIAS])
    # The inner layer doubles the ReLU output: its SmeLU sees 2 * relu(PRE).
    inner.get_layer("scale").set_weights([2 * np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    return model


@pytest.mark.backend
def test_statistics_of_known_pre_activations():
    widths = (0.1, 0.5, 1.0)
    levels = (0.1, 0.5, 0.9)
    report = inspect_activations(_known_model(), X, widths=widths, quantiles=levels, batch_size=64)
    assert [s.layer for s in report] == ["first", "inner/smelu", "out"]
    first = report["first"]
    assert (first.activation, first.kind, first.count) == ("relu", "argument", PRE.size)
    assert first.mean == pytest.approx(PRE.mean(), abs=1e-6)
    assert first.std == pytest.approx(PRE.std(), rel=1e-5)
    for level in levels:
        assert first.abs_quantiles[level] == pytest.approx(
            np.quantile(np.abs(PRE), level), rel=1e-5
        )
    for width in widths:
        assert first.band_share[width] == pytest.approx(np.mean(np.abs(PRE) < width), abs=1e-9)
    assert first.width is None
    smelu_in = 2 * np.maximum(PRE, 0)
    second = report["inner/smelu"]
    assert (second.activation, second.kind) == ("smelu", "layer")
    assert second.abs_quantiles[0.5] == pytest.approx(np.quantile(smelu_in, 0.5), rel=1e-5)
    # Its own width is reported with the share of its inputs inside that band.
    assert second.width == 0.5
    assert second.width_share == pytest.approx(np.mean(smelu_in < 0.5), abs=1e-9)


def test_counts_are_exact_when_quantiles_are_sampled():
    report = inspect_activations(_known_model(), X, max_values=50, widths=(0.5,), seed=3)
    first = report["first"]
    assert first.count == PRE.size
    assert first.band_share[0.5] == pytest.approx(np.mean(np.abs(PRE) < 0.5), abs=1e-9)
    # A sample of 50 values still places the median near the true one.
    true_median = np.quantile(np.abs(PRE), 0.5)
    assert abs(first.abs_quantiles[0.5] - true_median) < 0.5 * true_median


def test_max_rows_batches_and_iterables():
    model = _known_model()
    limited = inspect_activations(model, X, max_rows=50, batch_size=16)
    assert limited["first"].count == 50 * 2
    batches = (X[i : i + 40] for i in range(0, 200, 40))
    from_iterable = inspect_activations(model, batches)
    assert from_iterable["first"].count == PRE.size
    assert from_iterable["first"].std == pytest.approx(PRE.std(), rel=1e-5)


def test_tf_dataset_input():
    tf = pytest.importorskip("tensorflow")
    labels = np.zeros(len(X), dtype="float32")
    dataset = tf.data.Dataset.from_tensor_slices((X, labels)).batch(64)
    stats = inspect_activations(_known_model(), dataset, max_rows=None)["first"]
    assert stats.count == PRE.size
    assert stats.band_share[0.5] == pytest.approx(np.mean(np.abs(PRE) < 0.5), abs=1e-9)


def test_the_model_is_left_unchanged():
    model = _known_model()
    before = keras.ops.convert_to_numpy(model(X))
    weights = [w.copy() for w in model.get_weights()]
    inspect_activations(model, X)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(X)), before)
    assert model.get_layer("first").activation is keras.activations.relu
    for now, then in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(now, then)


def test_table_lists_every_activation():
    table = str(inspect_activations(_known_model(), X))
    lines = table.splitlines()
    assert len(lines) == 4
    assert "band 0.5" in lines[0] and "|x| q0.5" in lines[0]
    assert lines[2].startswith("inner/smelu") and "0.5:" in lines[2]


def test_learnable_width_is_read_from_its_weight():
    inputs = keras.Input((3,))
    layer = keras_smelu.SmeLU(beta=0.3, learnable=True, name="learned")
    model = keras.Model(inputs, layer(keras.layers.Dense(2)(inputs)))
    layer.weights[0].assign(np.log(0.8))
    stats = inspect_activations(model, X)["learned"]
    assert stats.width == pytest.approx(0.8, rel=1e-6)


def _stats(layer, activation, q01, q90):
    return ActivationStats(
        layer=layer,
        activation=activation,
        kind="argument",
        count=100,
        mean=0.0,
        std=1.0,
        abs_quantiles={0.01: q01, 0.5: (q01 + q90) / 2, 0.9: q90},
        band_share={},
    )


def test_auto_width_range_rule():
    rows = [
        _stats("a", "relu", 0.02, 0.8),
        _stats("b", "relu", 0.05, 5.0),
        _stats("out", "sigmoid", 1e-6, 50.0),
    ]
    # low: the smallest 1% quantile; high: the largest 90% quantile; the sigmoid is left out.
    assert auto_width_range(rows) == (0.02, 5.0)
    assert auto_width_range(rows, exclude=()) == (1e-3, 50.0)
    assert auto_width_range(rows, low_share=0.5, high_share=0.9) == pytest.approx((0.41, 5.0))


def test_auto_width_range_clamps_and_keeps_a_decade():
    narrow = [_stats("a", "relu", 0.4, 0.9)]
    low, high = auto_width_range(narrow)
    assert high / low == pytest.approx(10.0)
    assert np.sqrt(low * high) == pytest.approx(np.sqrt(0.4 * 0.9))
    dead = [_stats("a", "relu", 0.0, 0.0)]
    assert auto_width_range(dead) == pytest.approx((1e-3, 1e-2))
    huge = [_stats("a", "relu", 500.0, 900.0)]
    assert auto_width_range(huge, bounds=(1e-2, 10.0)) == pytest.approx((1.0, 10.0))


def test_auto_width_range_from_a_real_report():
    report = inspect_activations(_known_model(), X)
    low, high = auto_width_range(report)
    assert low == max(
        min(report["first"].abs_quantiles[0.01], report["inner/smelu"].abs_quantiles[0.01]), 1e-3
    )
    assert high == max(report["first"].abs_quantiles[0.9], report["inner/smelu"].abs_quantiles[0.9])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low_share": 0.05}, "no |x| quantile at level 0.05"),
        ({"low_share": 0.9, "high_share": 0.5}, "low_share=0.9"),
        ({"bounds": (1.0, 2.0)}, r"bounds=\(1.0, 2.0\)"),
        ({"exclude": ("relu",)}, "at least one hidden activation"),
    ],
)
def test_auto_width_range_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        auto_width_range([_stats("a", "relu", 0.1, 1.0)], **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": (0.5, -1.0)}, "widths="),
        ({"quantiles": (0.5, 1.0)}, "quantiles="),
        ({"batch_size": 0}, "batch_size"),
        ({"max_rows": 0}, "max_rows"),
    ],
)
def test_inspect_activations_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inspect_activations(_known_model(), X, **kwargs)


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="no examples"):
        inspect_activations(_known_model(), iter([]))
