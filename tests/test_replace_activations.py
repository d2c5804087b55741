"""Tests for keras_smelu.replace_activations: swapped models, weights, reports, refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_smelu
from keras_smelu import surgery

X = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")


def _relu_layer(name):
    return keras.layers.ReLU(name=name)


def _smelu_layer(name):
    return keras_smelu.SmeLU(beta=0.5, name=name)


def _sequential(argument, layer):
    """Dense(activation=...), an activation layer, Activation(...), then a sigmoid output."""
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation=argument(), name="dense"),
            keras.layers.Dense(8, name="linear_1"),
            layer("re_lu"),
            keras.layers.Dense(6, name="linear_2"),
            keras.layers.Activation(argument(), name="activation"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ],
        name="seq",
    )


def _functional(argument, layer):
    inputs = keras.Input((5,), name="x")
    left = keras.layers.Dense(8, activation=argument(), name="left")(inputs)
    right = layer("right_act")(keras.layers.Dense(8, name="right")(inputs))
    merged = keras.layers.Concatenate()([left, right])
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(merged)
    return keras.Model(inputs, outputs, name="func")


def _nested(argument, layer):
    inner = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(6, activation=argument(), name="dense"),
            layer("re_lu"),
        ],
        name="inner",
    )
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(8, activation=argument(), name="first")(inputs)
    outputs = keras.layers.Dense(1, name="out")(inner(hidden))
    return keras.Model(inputs, outputs, name="outer")


BUILDERS = {"sequential": _sequential, "functional": _functional, "nested": _nested}


def _trained_relu(builder):
    keras.utils.set_random_seed(1)
    model = builder(lambda: "relu", _relu_layer)
    # Biases away from zero, so that activations see both signs and SmeLU differs from ReLU.
    model.set_weights([w + 0.1 for w in model.get_weights()])
    return model


def _smelu_reference(builder, weights):
    """The same architecture built with SmeLU(0.5) by hand, given the original's weights."""
    model = builder(lambda: keras_smelu.SmeLU(beta=0.5), _smelu_layer)
    model.set_weights(weights)
    return model


def _predict(model):
    return keras.ops.convert_to_numpy(model(X, training=False))


@pytest.mark.backend
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_same_activation_gives_the_original_outputs(kind):
    model = _trained_relu(BUILDERS[kind])
    new_model, replaced = keras_smelu.replace_activations(model, "relu")
    assert replaced, "every builder has ReLU activations"
    assert new_model is not model
    np.testing.assert_allclose(_predict(new_model), _predict(model), rtol=1e-6, atol=1e-7)


@pytest.mark.backend
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_smelu_swap_matches_a_hand_built_smelu_model(kind):
    builder = BUILDERS[kind]
    model = _trained_relu(builder)
    new_model, _ = keras_smelu.replace_activations(model, keras_smelu.SmeLU(beta=0.5))
    reference = _smelu_reference(builder, model.get_weights())
    np.testing.assert_allclose(_predict(new_model), _predict(reference), rtol=1e-5, atol=1e-6)
    assert np.abs(_predict(new_model) - _predict(model)).max() > 1e-3


@pytest.mark.backend
def test_swap_of_a_model_loaded_from_a_keras_file(tmp_path):
    model = _trained_relu(_nested)
    path = tmp_path / "relu.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    new_model, replaced = keras_smelu.replace_activations(loaded, keras_smelu.SmeLU(beta=0.5))
    assert [r.layer for r in replaced] == ["first", "inner/dense", "inner/re_lu"]
    reference = _smelu_reference(_nested, model.get_weights())
    np.testing.assert_allclose(_predict(new_model), _predict(reference), rtol=1e-5, atol=1e-6)
    # The swapped model saves and loads back with its new activations.
    new_model.save(tmp_path / "smelu.keras")
    again = keras.saving.load_model(tmp_path / "smelu.keras", safe_mode=True)
    np.testing.assert_allclose(_predict(again), _predict(new_model), rtol=1e-6, atol=1e-7)


def test_weights_are_identical_and_independent():
    model = _trained_relu(_functional)
    before = [w.copy() for w in model.get_weights()]
    new_model, _ = keras_smelu.replace_activations(model, "smelu")
    assert len(new_model.get_weights()) == len(before)
    for new, old in zip(new_model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(new, old)
    new_model.layers[1].kernel.assign(np.zeros(new_model.layers[1].kernel.shape))
    for now, old in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, old)


def test_report_lists_what_was_replaced():
    model = _trained_relu(_sequential)
    result = keras_smelu.replace_activations(model, keras_smelu.SmeLU(beta=0.25))
    assert [(r.layer, r.kind, r.old) for r in result.replaced] == [
        ("dense", "argument", "relu"),
        ("re_lu", "layer", "relu"),
        ("activation", "layer", "relu"),
    ]
    assert {r.new for r in result.replaced} == {"SmeLU(beta=0.25)"}
    table = str(result)
    assert "3 activation(s) replaced" in table and "re_lu" in table
    # The sigmoid output is untouched, and a replaced layer keeps its name.
    assert result.model.layers[-1].activation is keras.activations.sigmoid
    assert isinstance(result.model.get_layer("re_lu"), keras_smelu.SmeLU)


def test_each_replacement_is_a_distinct_layer_with_its_own_width():
    model = _trained_relu(_sequential)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    new_model, replaced = keras_smelu.replace_activations(
        model, keras_smelu.SmeLU(beta=0.5, learnable=True)
    )
    smelus = [
        layer.activation if isinstance(layer, keras.layers.Dense) else layer
        for layer in new_model.layers
        if isinstance(layer, keras_smelu.SmeLU)
        or isinstance(getattr(layer, "activation", None), keras_smelu.SmeLU)
    ]
    assert len(smelus) == len(replaced) == 3
    assert len({id(layer) for layer in smelus}) == 3
    widths = [layer.weights[0] for layer in smelus]
    assert len({id(w) for w in widths}) == 3
    # Each width is a weight of the model and trains on its own.
    assert all(any(w is v for v in new_model.trainable_weights) for w in widths)
    assert new_model.compiled
    y = (X[:, 0] > 0).astype("float32")
    new_model.fit(X, y, epochs=3, batch_size=8, verbose=0)
    betas = [
        float(keras.ops.convert_to_numpy(layer.parameter_values()["beta"])) for layer in smelus
    ]
    assert all(b != pytest.approx(0.5, abs=1e-6) for b in betas)
    assert len(set(betas)) == 3


def test_kept_learnable_activation_keeps_its_trained_width():
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, activation=keras_smelu.SmeLU(beta=0.3, learnable=True)),
            keras.layers.Dense(4, activation="relu"),
        ]
    )
    model(X)
    model.layers[0].activation.weights[0].assign(np.log(0.7))
    new_model, replaced = keras_smelu.replace_activations(model, "gelu")
    assert [r.layer for r in replaced] == [model.layers[1].name]
    kept = new_model.layers[0].activation
    assert kept is not model.layers[0].activation
    beta = float(keras.ops.convert_to_numpy(kept.parameter_values()["beta"]))
    assert beta == pytest.approx(0.7, rel=1e-6)


def test_replacement_takes_the_dtype_policy_of_its_layer():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _trained_relu(_sequential)
    finally:
        keras.config.set_dtype_policy(previous)
    new_model, _ = keras_smelu.replace_activations(model, keras_smelu.SmeLU(beta=0.5))
    assert new_model.get_layer("dense").activation.dtype_policy.name == "mixed_float16"
    assert new_model.get_layer("re_lu").dtype_policy.name == "mixed_float16"
    assert keras.backend.standardize_dtype(new_model.get_layer("re_lu")(X).dtype) == "float16"


class _NoConfig(keras.layers.Layer):
    def __init__(self, units):
        super().__init__()
        self.units = units

    def call(self, inputs):
        return inputs * self.units

    def get_config(self):
        return {}  # units missing: cannot be re-created


def test_a_layer_that_cannot_be_recreated_is_named():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, _NoConfig(2)(keras.layers.Dense(3, activation="relu")(inputs)))
    with pytest.raises(ValueError, match="cannot be re-created from its config"):
        keras_smelu.replace_activations(model, "smelu")


def test_match_selects_by_name():
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, activation=keras_smelu.SmeLU(beta=0.3)),
            keras.layers.ReLU(max_value=6.0),
            keras.layers.Dense(4, activation="gelu"),
        ]
    )
    back, replaced = keras_smelu.replace_activations(model, "relu", match="smelu")
    assert [(r.layer, r.old) for r in replaced] == [(model.layers[0].name, "smelu")]
    assert back.layers[0].activation is keras.activations.relu
    # A clipped ReLU is not "relu", so it stays.
    assert isinstance(back.layers[1], keras.layers.ReLU)
    _, both = keras_smelu.replace_activations(model, "relu", match=("smelu", "gelu"))
    assert [r.old for r in both] == ["smelu", "gelu"]


def test_nothing_matched_warns():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="tanh")])
    with pytest.warns(UserWarning, match="no activation named"):
        result = keras_smelu.replace_activations(model, "smelu")
    assert result.replaced == ()


class _Subclassed(keras.Model):
    def __init__(self, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3, activation=activation)

    def call(self, inputs):
        return keras.ops.relu(self.dense(inputs))


def test_refuses_a_subclassed_model():
    model = _Subclassed()
    model(X)
    with pytest.raises(ValueError, match="subclassed model .*call"):
        keras_smelu.replace_activations(model, "smelu")


def test_refuses_a_nested_subclassed_model_hiding_a_match():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, _Subclassed(name="block")(inputs))
    with pytest.raises(ValueError, match="nested subclassed model 'block'.*block/dense"):
        keras_smelu.replace_activations(model, "smelu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "no_such_activation"}, "activation='no_such_activation'"),
        ({"activation": 3}, "activation=3"),
        ({"activation": "smelu", "match": ""}, "match=''"),
        ({"activation": "smelu", "match": [1]}, r"match=\[1\]"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, message):
    model = _trained_relu(_sequential)
    with pytest.raises(ValueError, match=message):
        keras_smelu.replace_activations(model, **kwargs)


def test_activation_names():
    assert surgery.activation_name(keras.layers.ReLU()) == "relu"
    assert surgery.activation_name(keras.layers.ReLU(negative_slope=0.1)).startswith("relu(")
    assert surgery.activation_name(keras.layers.Activation("relu")) == "relu"
    assert surgery.activation_name(keras_smelu.SmeLU()) == "smelu"
    assert surgery.activation_name(keras_smelu.GeneralizedSmeLU()) == "generalized_smelu"
    assert surgery.activation_name(keras.layers.LeakyReLU()) == "leaky_relu"
    assert surgery.activation_name(keras_smelu.ScaledActivation("gelu")) == "smooth_gelu"
    assert surgery.activation_name(keras_smelu.activations.smelu) == "smelu"
