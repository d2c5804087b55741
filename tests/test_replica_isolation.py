"""Replicas never share state, and inputs that would silently mislead are refused."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_smelu
from keras_smelu import train_replicas

RNG = np.random.default_rng(0)
X = RNG.normal(size=(256, 6)).astype("float32")
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype("float32")
TRAIN, EVAL = (X[:192], Y[:192]), (X[192:], Y[192:])


def build(activation):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation=activation),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    return model


def _learnable(model) -> list:
    """The activation layers with weights that the replica's Dense layers hold."""
    acts = [getattr(layer, "activation", None) for layer in model.layers]
    return [a for a in acts if isinstance(a, keras.layers.Layer) and a.weights]


@pytest.mark.backend
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(
    "make",
    [
        lambda: keras_smelu.SmeLU(beta=0.7, learnable=True),
        lambda: keras_smelu.GeneralizedSmeLU(alpha=0.5, beta=0.9, slope_left=0.1, learnable=True),
    ],
    ids=["smelu", "generalized_smelu"],
)
def test_an_activation_layer_is_copied_for_every_replica(make, fused):
    activation = make()
    initial = [np.array(w) for w in activation.get_weights()] if activation.weights else None
    report = train_replicas(
        build,
        TRAIN,
        EVAL,
        activation=activation,
        pairs=2,
        epochs=2,
        fused=fused,
        verbose=0,
        return_models=True,
    )
    replicas = report.models
    owners = [_learnable(m) for m in replicas]
    assert all(len(o) == 1 for o in owners)
    layers = [o[0] for o in owners]
    # Four distinct layers with distinct variables: no width trained by two replicas.
    assert len({id(layer) for layer in layers}) == 4
    variables = [id(v) for layer in layers for v in layer.weights]
    assert len(variables) == len(set(variables))
    assert activation not in layers
    # The given layer is untouched (never trained), and every replica's width moved from the
    # same starting value on its own (pair 2 did not start where pair 1 ended).
    if initial is not None:
        for got, want in zip(activation.get_weights(), initial, strict=True):
            np.testing.assert_array_equal(got, want)
    widths = [float(np.ravel(layer.get_weights()[-1])[0]) for layer in layers]
    assert len(set(np.round(widths, 7))) > 1


@pytest.mark.backend
def test_a_builder_that_reuses_a_layer_is_refused_naming_the_variable():
    shared_embedding = keras.layers.Dense(8, name="pretrained_tower")

    def reusing(activation):
        model = keras.Sequential(
            [keras.Input((6,)), shared_embedding, keras.layers.Dense(1, activation="sigmoid")]
        )
        model.compile("adam", "binary_crossentropy")
        return model

    with pytest.raises(ValueError, match=r"share .*pretrained_tower.*create every layer inside"):
        train_replicas(reusing, TRAIN, EVAL, pairs=1, epochs=1, verbose=0)


@pytest.mark.backend
def test_a_builder_that_closes_over_a_learnable_activation_is_refused():
    smelu = keras_smelu.SmeLU(beta=0.5, learnable=True)

    def closing(activation):  # ignores the copy it is given
        return build(smelu)

    with pytest.raises(ValueError, match="share"):
        train_replicas(closing, TRAIN, EVAL, activation="relu", pairs=1, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array(["a", "b"] * 96), r"labels of `train_data` must be numbers"),
        (np.where(np.arange(192) == 5, np.nan, 1.0), r"labels of `train_data` must be finite"),
        (np.where(np.arange(192) == 7, np.inf, 0.0), r"row 7"),
    ],
)
def test_labels_of_the_wrong_kind_are_refused_naming_the_argument(labels, match):
    with pytest.raises(ValueError, match=match):
        train_replicas(build, (X[:192], labels), EVAL, pairs=1, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=match.replace("train_data", "eval_data")):
        train_replicas(build, TRAIN, (X[:192], labels), pairs=1, epochs=1, verbose=0)


@pytest.mark.parametrize("kind", ["filter", "generator"])
def test_a_dataset_of_unknown_length_is_refused_instead_of_hanging(kind):
    tf = pytest.importorskip("tensorflow")
    if kind == "filter":
        data = tf.data.Dataset.from_tensor_slices(TRAIN).repeat().filter(lambda x, y: y > 0)
    else:

        def endless():
            while True:
                yield X[:1], Y[:1]

        spec = (tf.TensorSpec((None, 6), tf.float32), tf.TensorSpec((None,), tf.float32))
        data = tf.data.Dataset.from_generator(endless, output_signature=spec)
    with pytest.raises(ValueError, match=r"`train_data` .*unknown length.*assert_cardinality"):
        train_replicas(build, data, EVAL, pairs=1, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`eval_data` .*unknown length"):
        train_replicas(build, TRAIN, data, pairs=1, epochs=1, verbose=0)
