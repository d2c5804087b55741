"""SmeLU and GeneralizedSmeLU layers: the Keras layer contract, correctness, invalid input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_smelu
from tests import reference
from tests._backend import numpy

pytestmark = pytest.mark.backend


def check_layer_contract(layer, input_shape=(4, 3), expect_weights=0):
    """Build, config round trip, serialization, one training step (Keras's run_layer_test)."""
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    y = numpy(layer(x))
    assert y.shape == x.shape
    assert len(layer.trainable_weights) == expect_weights

    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
    if expect_weights:
        if not restored.built:
            restored.build(x.shape)
        restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(numpy(restored(x)), y, rtol=1e-6)

    model = keras.Sequential([keras.Input(input_shape[1:]), keras.layers.Dense(3), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, np.ones_like(x), epochs=1, batch_size=len(x), verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    return model


def test_smelu_layer_contract_fixed():
    check_layer_contract(keras_smelu.SmeLU(beta=0.3))


def test_smelu_layer_contract_learnable():
    check_layer_contract(keras_smelu.SmeLU(beta=0.8, learnable=True), expect_weights=1)


def test_generalized_layer_contract():
    check_layer_contract(keras_smelu.GeneralizedSmeLU(0.5, 1.0, 0.1, 1.0))
    check_layer_contract(
        keras_smelu.GeneralizedSmeLU(0.5, 1.0, 0.1, 1.0, learnable=True), expect_weights=4
    )


def test_layer_matches_reference():
    x = np.linspace(-2, 2, 41).astype("float32")
    np.testing.assert_allclose(
        numpy(keras_smelu.SmeLU(beta=0.4)(x)), reference.smelu(x, 0.4), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        numpy(keras_smelu.SmeLU(beta=0.4, learnable=True)(x)),
        reference.smelu(x, 0.4),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        numpy(keras_smelu.GeneralizedSmeLU(0.3, 0.7, -0.1, 1.2)(x)),
        reference.generalized_smelu(x, 0.3, 0.7, -0.1, 1.2),
        rtol=1e-5,
        atol=1e-6,
    )


def test_layer_as_dense_and_conv_activation():
    dense = keras.layers.Dense(5, activation=keras_smelu.SmeLU(beta=0.5))
    assert numpy(dense(np.ones((2, 3), "float32"))).shape == (2, 5)
    conv = keras.layers.Conv2D(4, 3, activation=keras_smelu.SmeLU(beta=0.5, learnable=True))
    assert numpy(conv(np.ones((1, 6, 6, 2), "float32"))).shape == (1, 4, 4, 4)
    assert len(conv.trainable_weights) == 3  # kernel, bias, the width


def test_learnable_width_stays_positive_and_learns():
    # A large learning rate pushes the width hard down; the log parametrization keeps it > 0.
    layer = keras_smelu.SmeLU(beta=0.5, learnable=True)
    model = keras.Sequential([keras.Input((1,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(50.0), loss="mse")
    x = np.linspace(-0.4, 0.4, 64).reshape(-1, 1).astype("float32")
    model.fit(x, np.maximum(x, 0.0), epochs=5, batch_size=64, verbose=0)
    beta = numpy(layer.parameter_values()["beta"])
    assert np.all(beta > 0) and np.all(np.isfinite(beta))
    assert float(beta) < 0.5  # moved towards ReLU, the target


def test_per_unit_and_shared_axes_shapes():
    layer = keras_smelu.SmeLU(beta=1.0, learnable=True, per_unit=True)
    layer(np.ones((2, 5), "float32"))
    assert tuple(layer.trainable_weights[0].shape) == (5,)
    conv_layer = keras_smelu.SmeLU(beta=1.0, learnable=True, per_unit=True, shared_axes=[1, 2])
    conv_layer(np.ones((2, 4, 4, 3), "float32"))
    assert tuple(conv_layer.trainable_weights[0].shape) == (1, 1, 3)
    np.testing.assert_allclose(numpy(conv_layer.parameter_values()["beta"]), 1.0, rtol=1e-6)


def test_initializer_regularizer_constraint_in_width_units():
    layer = keras_smelu.SmeLU(
        learnable=True,
        beta_initializer=keras.initializers.Constant(2.0),
        beta_regularizer=keras.regularizers.L2(0.1),
        beta_constraint=lambda w: keras.ops.minimum(w, 1.5),
    )
    layer(np.ones((2, 3), "float32"))
    np.testing.assert_allclose(numpy(layer.parameter_values()["beta"]), 2.0, rtol=1e-6)
    np.testing.assert_allclose(float(numpy(layer.losses[0])), 0.1 * 4.0, rtol=1e-5)
    constrained = layer.trainable_weights[0].constraint(layer.trainable_weights[0])
    np.testing.assert_allclose(float(np.exp(numpy(constrained))), 1.5, rtol=1e-5)


def test_trainable_false_freezes_a_learnable_width():
    layer = keras_smelu.SmeLU(beta=0.5, learnable=True, trainable=False)
    layer(np.ones((1, 2), "float32"))
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"beta": -1.0}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": "0.5"}, "beta"),
        ({"beta": 0.0, "learnable": True}, "beta"),
        ({"learnable": "yes"}, "learnable"),
        ({"per_unit": True}, "learnable=True"),
        ({"shared_axes": [1]}, "shared_axes"),
        ({"learnable": True, "shared_axes": [1]}, "per_unit=True"),
        ({"learnable": True, "per_unit": True, "shared_axes": [0]}, "axes >= 1"),
    ],
)
def test_smelu_layer_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_smelu.SmeLU(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": -0.5}, "alpha"),
        ({"alpha": 0.0, "beta": 0.0}, "alpha \\+ beta"),
        ({"slope_left": float("inf")}, "slope_left"),
        ({"slope_right": None}, "slope_right"),
    ],
)
def test_generalized_layer_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_smelu.GeneralizedSmeLU(**kwargs)
