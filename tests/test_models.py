"""Tests of `keras_smelu.models`: building from each dataset kind, training, options, saving.

Building a model costs seconds on JAX (each new weight shape compiles its initializer), so the
structural tests use a tiny spec and eager forward calls; one epoch of `fit` runs per dataset kind.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_smelu.datasets import (
    RecDataset,
    load_avazu,
    load_criteo,
    load_libsvm,
    load_movielens_100k,
    make_synthetic_click_log,
)
from keras_smelu.models import deep_cross, embedding_mlp, feature_spec
from tests._data import real_data

SMALL = {"embedding_dim": 4, "hidden": (16, 8)}
TINY = ({"a": 5, "b": 7}, ("n",), "binary")


def tiny_x(n: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.integers(0, 5, n).astype(np.int32),
        "b": rng.integers(0, 7, n).astype(np.int32),
        "n": rng.normal(size=n).astype(np.float32),
    }


def forward(model: keras.Model, x: dict[str, np.ndarray], training: bool = False) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=training))


def libsvm_dataset(tmp_path: Path) -> RecDataset:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(300):
        ids = rng.choice(50, size=rng.integers(1, 6), replace=False) + 1
        tokens = " ".join(f"{i}:{rng.random():.3f}" for i in ids)
        lines.append(f"{int(ids.min() < 10)} {tokens}\n")
    file = tmp_path / "data.libsvm"
    file.write_text("".join(lines))
    return load_libsvm(file)


def get_dataset(kind: str, tmp_path: Path) -> RecDataset:
    if kind == "synthetic":
        return make_synthetic_click_log(n_train=300, n_test=100)
    if kind == "libsvm":
        return libsvm_dataset(tmp_path)
    folder, loader, kwargs = {
        "movielens": ("movielens-100k", load_movielens_100k, {}),
        "movielens-rating": ("movielens-100k", load_movielens_100k, {"label": "rating"}),
        "criteo": ("criteo-dac-8k", load_criteo, {}),
        "avazu": ("avazu-9k", load_avazu, {}),
    }[kind]
    return loader(real_data(folder), **kwargs)


@pytest.mark.parametrize(
    "kind, builder",
    [
        ("synthetic", embedding_mlp),
        ("synthetic", deep_cross),
        ("libsvm", embedding_mlp),
        ("libsvm", deep_cross),
        ("movielens", embedding_mlp),
        ("movielens-rating", deep_cross),
        ("criteo", embedding_mlp),
        ("avazu", embedding_mlp),
    ],
)
def test_builds_and_trains_on_each_dataset(kind, builder, tmp_path):
    ds = get_dataset(kind, tmp_path).subset(256, 64)
    model = builder(ds, "relu", **SMALL)
    assert set(model.input) == set(ds.features)
    history = model.fit(*ds.train, epochs=1, batch_size=128, verbose=0)
    metric = "auc" if ds.task == "binary" else "rmse"
    assert metric in history.history and np.isfinite(history.history["loss"][0])
    assert model.loss == ("binary_crossentropy" if ds.task == "binary" else "mse")
    predictions = model.predict(ds.x_test, batch_size=64, verbose=0)
    assert predictions.shape == (ds.n_test,)
    if ds.task == "binary":
        assert ((predictions > 0) & (predictions < 1)).all()


def test_spec_tuple():
    spec = feature_spec(TINY)
    assert spec.categorical == TINY[0] and spec.numeric == ("n",) and spec.bags == {}
    model = embedding_mlp(({"a": 5}, ["n"], "regression"), "gelu", **SMALL)
    assert model.output.shape == (None,) and model.loss == "mse"
    x = tiny_x(64)
    history = model.fit({"a": x["a"], "n": x["n"]}, x["n"], epochs=1, batch_size=64, verbose=0)
    assert "rmse" in history.history
    bags = feature_spec(({"ids": 10}, ("values",), "binary", {"ids": "values"}))
    assert bags.bags == {"ids": "values"}
    with pytest.raises(ValueError, match="task"):
        embedding_mlp((TINY[0], TINY[1], "ranking"))
    with pytest.raises(ValueError, match="RecDataset or a"):
        embedding_mlp(TINY[0])
    with pytest.raises(ValueError, match="bags"):
        embedding_mlp(({"a": 3}, (), "binary", {"a": "w"}))
    with pytest.raises(ValueError, match="at least one feature"):
        embedding_mlp(({}, (), "binary"))
    with pytest.raises(ValueError, match="Vocabulary sizes"):
        embedding_mlp(({"a": 0}, (), "binary"))


def activation_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.name.endswith("_activation")]


@pytest.mark.parametrize("activation", ["relu", "gelu", keras.activations.silu])
def test_string_and_callable_activations(activation):
    model = embedding_mlp(TINY, activation, **SMALL)
    layers = activation_layers(model)
    assert len(layers) == 2 and all(isinstance(a, keras.layers.Activation) for a in layers)
    assert layers[0].activation is keras.activations.get(activation)
    assert forward(model, tiny_x()).shape == (32,)


def test_layer_instance_is_cloned_per_layer():
    template = keras.layers.LeakyReLU(negative_slope=0.3)
    for builder in (embedding_mlp, deep_cross):
        model = builder(TINY, template, **SMALL)
        layers = activation_layers(model)
        assert len(layers) == 2 and len({id(a) for a in layers}) == 2
        assert template not in layers
        assert all(isinstance(a, keras.layers.LeakyReLU) for a in layers)
        assert all(a.negative_slope == pytest.approx(0.3) for a in layers)
        assert np.isfinite(forward(model, tiny_x())).all()
    with pytest.raises(ValueError, match="activation"):
        embedding_mlp(TINY, "no_such_activation", **SMALL)


@pytest.mark.parametrize(
    "normalization, layer_class",
    [("layer", keras.layers.LayerNormalization), ("batch", keras.layers.BatchNormalization)],
)
def test_normalization_before_activation(normalization, layer_class):
    model = embedding_mlp(TINY, "relu", normalization=normalization, dropout=0.2, **SMALL)
    names = [layer.name for layer in model.layers]
    for i in range(2):
        dense, norm = model.get_layer(f"hidden_{i}"), model.get_layer(f"hidden_{i}_norm")
        assert isinstance(norm, layer_class) and not dense.use_bias
        order = [names.index(f"hidden_{i}{s}") for s in ("", "_norm", "_activation", "_dropout")]
        assert order == sorted(order)
    assert np.isfinite(forward(model, tiny_x(), training=True)).all()
    with pytest.raises(ValueError, match="normalization"):
        embedding_mlp(TINY, normalization="group")


def test_no_normalization_no_dropout():
    model = embedding_mlp(TINY, "relu", **SMALL)
    assert model.get_layer("hidden_0").use_bias
    assert not any("norm" in la.name or "dropout" in la.name for la in model.layers)
    assert model.get_layer("a_embedding").output.shape == (None, 1, 4)


def test_deep_cross_structure():
    parallel = deep_cross(TINY, "relu", cross_layers=3, **SMALL)
    assert len([la for la in parallel.layers if isinstance(la, keras.layers.Multiply)]) == 3
    assert isinstance(parallel.get_layer("cross_deep"), keras.layers.Concatenate)
    stacked = deep_cross(TINY, "relu", cross_layers=1, low_rank=2, stacked=True, **SMALL)
    assert stacked.get_layer("cross_0_down").units == 2
    width = stacked.get_layer("features").output.shape[-1]
    assert width == 4 + 4 + 1
    assert stacked.get_layer("cross_0_up").units == width
    assert stacked.get_layer("deep_0").input.shape[-1] == width
    assert forward(stacked, tiny_x()).shape == (32,)
    with pytest.raises(ValueError, match="low_rank"):
        deep_cross(TINY, low_rank=0)
    with pytest.raises(ValueError, match="cross_layers"):
        deep_cross(TINY, cross_layers=-1)


def test_compile_options():
    model = embedding_mlp(TINY, optimizer="sgd", learning_rate=0.05, name="m", **SMALL)
    assert model.name == "m" and isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    shared = keras.optimizers.Adam(learning_rate=0.01)
    a = embedding_mlp(TINY, optimizer=shared, **SMALL)
    assert a.optimizer is not shared and isinstance(a.optimizer, keras.optimizers.Adam)
    assert float(a.optimizer.learning_rate) == pytest.approx(0.01)
    for kwargs, match in [
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"hidden": 64}, "hidden"),
        ({"hidden": (8, 0)}, "hidden"),
        ({"dropout": 1.0}, "dropout"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"optimizer": 3}, "optimizer"),
    ]:
        with pytest.raises(ValueError, match=match):
            embedding_mlp(TINY, **kwargs)


def test_save_and_load_safe_mode(tmp_path):
    x = tiny_x()
    for builder in (embedding_mlp, deep_cross):
        model = builder(TINY, "relu", normalization="layer", **SMALL)
        path = tmp_path / f"{builder.__name__}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
        np.testing.assert_allclose(forward(loaded, x), forward(model, x), rtol=1e-6)


def test_smelu_by_name():
    pytest.importorskip("keras_smelu")
    try:
        keras.activations.get("smelu")
    except ValueError:
        pytest.skip("the 'smelu' activation is not registered by this build of keras_smelu")
    model = embedding_mlp(TINY, "smelu", normalization="layer", **SMALL)
    x = tiny_x(64)
    history = model.fit(x, (x["n"] > 0).astype(np.float32), epochs=1, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_model_learns_the_synthetic_signal():
    """A small MLP beats the base rate's log loss on held-out synthetic clicks."""
    keras.utils.set_random_seed(0)
    ds = make_synthetic_click_log(n_train=6_000, n_test=2_000, seed=0)
    model = embedding_mlp(ds, "relu", embedding_dim=4, hidden=(32, 16), learning_rate=3e-3)
    model.fit(*ds.train, epochs=2, batch_size=128, verbose=0)
    p = np.clip(forward(model, ds.x_test), 1e-7, 1 - 1e-7)
    y = ds.y_test
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    base = float(-np.mean(y * np.log(ds.base_rate) + (1 - y) * np.log(1 - ds.base_rate)))
    assert loss < base - 0.005
