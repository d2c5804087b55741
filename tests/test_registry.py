"""`activation="smelu"` after `import keras_smelu`, and the guard on Keras's internals."""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest

import keras_smelu
from keras_smelu import _registry, activations

pytestmark = pytest.mark.backend


def test_keras_internals_the_hook_relies_on():
    # If this fails, Keras moved its activation table: update keras_smelu/_registry.py.
    from keras.src import activations as keras_activations

    assert isinstance(keras_activations.ALL_OBJECTS_DICT, dict)
    assert keras_activations.ALL_OBJECTS_DICT.get("relu") is keras.activations.relu
    assert keras_activations.get.__globals__["ALL_OBJECTS_DICT"] is (
        keras_activations.ALL_OBJECTS_DICT
    )


def test_string_resolves_everywhere():
    assert keras.activations.get("smelu") is activations.smelu
    assert keras.activations.get("generalized_smelu") is activations.generalized_smelu
    x = np.linspace(-1, 1, 6).reshape(2, 3).astype("float32")
    want = keras.ops.convert_to_numpy(activations.smelu(x))
    got = keras.ops.convert_to_numpy(keras.layers.Activation("smelu")(x))
    np.testing.assert_array_equal(got, want)
    dense = keras.layers.Dense(2, activation="smelu")
    dense(x)
    assert dense.activation is activations.smelu
    conv = keras.layers.Conv1D(2, 1, activation="smelu")
    conv(x[..., None])
    assert conv.activation is activations.smelu


def test_registration_is_idempotent():
    keras_smelu.register_activations()
    keras_smelu.register_activations()
    assert keras.activations.get("smelu") is activations.smelu


def test_guard_fails_loudly_when_the_table_is_missing():
    with pytest.raises(RuntimeError, match="ALL_OBJECTS_DICT"):
        _registry.register_activations(types.SimpleNamespace())


def test_guard_refuses_to_overwrite_a_foreign_name():
    fake = types.SimpleNamespace(ALL_OBJECTS_DICT={"smelu": keras.activations.relu})
    with pytest.raises(RuntimeError, match="already maps"):
        _registry.register_activations(fake)


def test_registered_names_use_the_package():
    assert keras.saving.get_registered_name(activations.smelu) == "keras_smelu>smelu"
    assert keras.saving.get_registered_name(keras_smelu.SmeLU) == "keras_smelu>SmeLU"
    config = keras.layers.Dense(2, activation="smelu").get_config()["activation"]
    assert config["config"] == "keras_smelu>smelu"


def test_keras_tuner_choice_builds_a_smelu_model():
    kt = pytest.importorskip("keras_tuner")
    hp = kt.HyperParameters()
    choice = hp.Choice("activation", ["relu", "smelu"], default="smelu")
    layer = keras.layers.Dense(2, activation=choice)
    layer(np.ones((1, 3), "float32"))
    assert layer.activation is activations.smelu
