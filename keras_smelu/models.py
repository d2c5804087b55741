"""Example recommender models: an embedding MLP and a DCN-v2 style deep & cross network.

Both take the activation of their hidden layers as an argument (a name such as `"relu"` or
`"smelu"`, a callable, or a Keras layer instance), which is what the tuner varies, and both
return a compiled functional `keras.Model` that takes a dict of the dataset's features.

`warm_start` makes a builder of the same kind from a saved, trained model: each model it builds
starts from the saved weights, with the activation swapped in.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import keras

from keras_smelu.datasets._base import TASKS

if TYPE_CHECKING:
    from keras_smelu.datasets import RecDataset

NORMALIZATIONS = (None, "layer", "batch")

Activation = str | Callable[..., Any] | keras.layers.Layer | None
"""A hidden layers' activation: a name, a callable, a Keras layer (cloned per use), or None."""

SpecTuple = (
    tuple[Mapping[str, int], Sequence[str], str]
    | tuple[Mapping[str, int], Sequence[str], str, Mapping[str, str]]
)
"""A dataset's features as a tuple `(categorical, numeric, task[, bags])`: vocabulary size by
categorical feature, the numeric feature names, `"binary"` or `"regression"`, and optionally
each multi-valued (bag) feature's weights feature."""


class FeatureSpec(NamedTuple):
    """What a model needs to know about a dataset's features."""

    categorical: dict[str, int]
    numeric: tuple[str, ...]
    task: Literal["binary", "regression"]
    bags: dict[str, str]


def feature_spec(dataset_or_spec: RecDataset | SpecTuple) -> FeatureSpec:
    """Normalizes a `RecDataset` or a `(categorical, numeric, task[, bags])` tuple.

    Args:
        dataset_or_spec: a `keras_smelu.datasets.RecDataset` (or any object with `categorical`,
            `numeric` and `task` attributes), or a tuple `(categorical, numeric, task)` with an
            optional fourth element `bags` (multi-valued feature -> its weights feature).

    Returns:
        A `FeatureSpec`.
    """
    if hasattr(dataset_or_spec, "categorical") and hasattr(dataset_or_spec, "task"):
        categorical = dataset_or_spec.categorical
        numeric = dataset_or_spec.numeric
        task = dataset_or_spec.task
        bags = getattr(dataset_or_spec, "bags", {}) or {}
    elif isinstance(dataset_or_spec, Sequence) and len(dataset_or_spec) in (3, 4):
        categorical, numeric, task = dataset_or_spec[:3]
        bags = dataset_or_spec[3] if len(dataset_or_spec) == 4 else {}
    else:
        raise ValueError(
            "Expected a RecDataset or a (categorical, numeric, task[, bags]) tuple. "
            f"Received: {type(dataset_or_spec).__name__}"
        )
    if not isinstance(categorical, Mapping):
        raise ValueError(
            f"`categorical` must map names to vocabulary sizes. Received: {categorical!r}"
        )
    if isinstance(numeric, str):
        raise ValueError(f"`numeric` must be a sequence of names. Received: {numeric!r}")
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
    for name, size in categorical.items():
        if int(size) != size or size < 1:
            raise ValueError(f"Vocabulary sizes must be integers >= 1. Received: {name}={size!r}")
    numeric = tuple(numeric)
    for bag, weights in bags.items():
        if bag not in categorical or weights not in numeric:
            raise ValueError(
                f"`bags` must map a categorical feature to a numeric one. Received: {dict(bags)}"
            )
    if not categorical and not numeric:
        raise ValueError("A model needs at least one feature. Received none.")
    return FeatureSpec(dict(categorical), numeric, task, dict(bags))


def embedding_mlp(
    dataset_or_spec: RecDataset | SpecTuple,
    activation: Activation = "relu",
    *,
    embedding_dim: int = 8,
    hidden: Sequence[int] = (256, 128, 64),
    normalization: Literal["layer", "batch"] | None = None,
    dropout: float = 0.0,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    learning_rate: float = 1e-3,
    name: str | None = None,
) -> keras.Model:
    """Builds and compiles an embedding + MLP recommender model.

    Each categorical feature gets its own `Embedding(vocabulary_size, embedding_dim)`; a bag
    feature (see `RecDataset.bags`) is pooled as `sum_j w_j * embedding(id_j)`. The embeddings and
    the numeric features are concatenated and fed to hidden layers
    `Dense -> [normalization] -> activation -> [dropout]` (with normalization, the Dense layer has
    no bias and the normalization comes before the activation), then to one output unit: a
    sigmoid for a binary task (loss `binary_crossentropy`, metric `"auc"`), linear for regression
    (loss `mse`, metric `"rmse"`). Predictions have shape `(batch,)`, like the labels.

    Args:
        dataset_or_spec: a `RecDataset`, or a `(categorical, numeric, task[, bags])` tuple.
        activation: the hidden layers' activation: a name (`"relu"`, `"smelu"` once
            `keras_smelu` is imported, ...), a callable, or a Keras layer instance, which is
            cloned (from its config) for every hidden layer, so the instance itself is not used.
        embedding_dim: embedding width of every categorical feature.
        hidden: units of the hidden layers.
        normalization: `None`, `"layer"` (LayerNormalization) or `"batch"` (BatchNormalization).
        dropout: dropout rate after each activation, in [0, 1).
        optimizer: an optimizer name (built with `learning_rate`) or instance (cloned from its
            config; `learning_rate` is then ignored).
        learning_rate: learning rate of a named optimizer.
        name: the model's name (default `"embedding_mlp"`).

    Returns:
        A compiled functional `keras.Model` taking a dict of the features.

    Example:

    >>> from keras_smelu.datasets import make_synthetic_click_log
    >>> ds = make_synthetic_click_log(n_train=512, n_test=128)
    >>> model = embedding_mlp(ds, "relu", hidden=(16,))
    >>> model.predict(ds.x_test, verbose=0).shape
    (128,)
    """
    spec = feature_spec(dataset_or_spec)
    _check_common(embedding_dim, hidden, normalization, dropout)
    inputs, features = _feature_inputs(spec, embedding_dim)
    x = _concat(features)
    x = _mlp(x, hidden, activation, normalization, dropout, prefix="hidden")
    return _finish(inputs, x, spec, optimizer, learning_rate, name or "embedding_mlp")


def deep_cross(
    dataset_or_spec: RecDataset | SpecTuple,
    activation: Activation = "relu",
    *,
    embedding_dim: int = 8,
    cross_layers: int = 2,
    low_rank: int | None = None,
    hidden: Sequence[int] = (256, 128, 64),
    stacked: bool = False,
    normalization: Literal["layer", "batch"] | None = None,
    dropout: float = 0.0,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    learning_rate: float = 1e-3,
    name: str | None = None,
) -> keras.Model:
    """Builds and compiles a DCN-v2 style deep & cross network.

    The input `x0` (embeddings and numeric features, as in `embedding_mlp`) goes through
    `cross_layers` cross layers `x_{l+1} = x0 * (W x_l + b) + x_l` (with `low_rank=r`,
    `W = U V` of rank `r`), and through a deep MLP whose hidden layers use `activation`. The two
    are combined in parallel (concatenated, the default) or stacked (the MLP on top of the cross
    output), then fed to the output unit. Task, loss, metrics and output shape are as in
    `embedding_mlp`. Only built-in Keras layers are used, so the model loads with
    `safe_mode=True` without custom objects (beyond the activation's own).

    Args:
        dataset_or_spec: a `RecDataset`, or a `(categorical, numeric, task[, bags])` tuple.
        activation: the deep part's activation (see `embedding_mlp`).
        embedding_dim: embedding width of every categorical feature.
        cross_layers: number of cross layers (>= 0).
        low_rank: rank of the cross layers' weight matrices (`None`: full rank).
        hidden: units of the deep part's hidden layers.
        stacked: stack the deep part on the cross part instead of running them in parallel.
        normalization: `None`, `"layer"` or `"batch"`, before each deep activation.
        dropout: dropout rate after each deep activation, in [0, 1).
        optimizer: an optimizer name or instance (see `embedding_mlp`).
        learning_rate: learning rate of a named optimizer.
        name: the model's name (default `"deep_cross"`).

    Returns:
        A compiled functional `keras.Model` taking a dict of the features.

    Example:

    >>> from keras_smelu.datasets import make_synthetic_click_log
    >>> ds = make_synthetic_click_log(n_train=512, n_test=128)
    >>> model = deep_cross(ds, "relu", hidden=(16,), low_rank=4)
    >>> model.predict(ds.x_test, verbose=0).shape
    (128,)

    Reference:
        Wang et al., "DCN V2: Improved Deep & Cross Network", arXiv:2008.13535.
    """
    spec = feature_spec(dataset_or_spec)
    _check_common(embedding_dim, hidden, normalization, dropout)
    if int(cross_layers) != cross_layers or cross_layers < 0:
        raise ValueError(f"`cross_layers` must be an integer >= 0. Received: {cross_layers!r}")
    if low_rank is not None and (int(low_rank) != low_rank or low_rank < 1):
        raise ValueError(f"`low_rank` must be None or an integer >= 1. Received: {low_rank!r}")
    inputs, features = _feature_inputs(spec, embedding_dim)
    x0 = _concat(features)
    width = x0.shape[-1]
    x = x0
    for i in range(int(cross_layers)):
        if low_rank is None:
            projected = keras.layers.Dense(width, name=f"cross_{i}_dense")(x)
        else:
            down = keras.layers.Dense(int(low_rank), use_bias=False, name=f"cross_{i}_down")(x)
            projected = keras.layers.Dense(width, name=f"cross_{i}_up")(down)
        x = keras.layers.Add(name=f"cross_{i}")(
            [keras.layers.Multiply(name=f"cross_{i}_gate")([x0, projected]), x]
        )
    if stacked:
        out = _mlp(x, hidden, activation, normalization, dropout, prefix="deep")
    else:
        deep = _mlp(x0, hidden, activation, normalization, dropout, prefix="deep")
        out = keras.layers.Concatenate(name="cross_deep")([x, deep])
    return _finish(inputs, out, spec, optimizer, learning_rate, name or "deep_cross")


class WarmStart:
    """A builder `activation -> compiled keras.Model` whose models start from a saved model.

    Made by `warm_start`. Attributes: `path` (the `.keras` file) and `sha256` (a digest of
    its bytes, which a tuning study records so that a resume with another file is refused).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        learning_rate: float = 1e-3,
        match: str | Sequence[str] = "relu",
    ) -> None:
        path = Path(path).expanduser()
        if path.suffix != ".keras" or not path.is_file():
            what = "no such file" if not path.exists() else "not a .keras file"
            raise ValueError(
                f"Argument `path` must name a saved model file ending in '.keras'; received: "
                f"{str(path)!r} ({what})"
            )
        _optimizer(optimizer, learning_rate)  # checked now, built afresh per model
        self.path = path
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.match = match
        self._base: keras.Model | None = None

    def base(self) -> keras.Model:
        """The saved model, loaded once (`safe_mode=True`)."""
        if self._base is None:
            model = keras.saving.load_model(self.path, safe_mode=True)
            if not model.get_compile_config():
                raise ValueError(
                    "A warm start needs a model saved after `compile` (its loss and metrics "
                    f"are kept); received: {str(self.path)!r}, saved uncompiled"
                )
            self._base = model
        return self._base

    def __call__(self, activation: Activation = "relu") -> keras.Model:
        from keras_smelu.surgery import activation_name, replace_activations

        base = self.base()
        is_relu = (
            activation == "relu"
            if isinstance(activation, str)
            else (activation is not None and activation_name(activation) == "relu")
        )
        if is_relu:  # the reference: the model as saved
            model = keras.models.clone_model(base)
            model.set_weights(base.get_weights())
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nothing to swap is refused just below
                model, replaced = replace_activations(base, activation, match=self.match)
            if not replaced:
                raise ValueError(
                    f"The warm-start model has no activation named {self.match!r} to swap for "
                    f"{activation!r}; received: {str(self.path)!r}"
                )
        config = dict(base.get_compile_config())
        config["optimizer"] = keras.optimizers.serialize(
            _optimizer(self.optimizer, self.learning_rate)
        )
        model.compile_from_config(config)
        return model

    def __repr__(self) -> str:
        return f"warm_start({str(self.path)!r})"


def warm_start(
    path: str | os.PathLike[str],
    *,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    learning_rate: float = 1e-3,
    match: str | Sequence[str] = "relu",
) -> WarmStart:
    """A model builder whose models start from the weights of a saved, trained model.

    `builder(activation)` loads `path` (once, `safe_mode=True`), swaps every activation named
    `match` for `activation` with `keras_smelu.surgery.replace_activations` (every weight
    kept; for `"relu"`, the ReLU reference, the model as saved), and compiles it with the saved
    loss and metrics and a fresh `optimizer` with `learning_rate`. So `train_replicas` and
    the tuner fine-tune it.

    All replicas then start from the same weights: `vary="data_order"` (the default) is the
    protocol; `vary="init"` varies nothing (only new weights, e.g. a learnable width, would
    differ) and `"both"` is the same as `"data_order"`.

    Args:
        path: A `.keras` file saved after `compile` (e.g. a trained ReLU model).
        optimizer: An optimizer name or instance for fine-tuning (see `embedding_mlp`).
        learning_rate: Learning rate of a named optimizer.
        match: Name or names of the activations to swap (`surgery.activation_name`).

    Returns:
        A `WarmStart` builder (`path` and `sha256` identify the file).

    Raises:
        ValueError: `path` is not a `.keras` file, or the optimizer is invalid; when a model
            is built: the file was saved uncompiled, or holds no activation to swap.

    Example:

    >>> build = warm_start("relu_model.keras", learning_rate=1e-4)  # doctest: +SKIP
    >>> report = keras_smelu.train_replicas(
    ...     build, train, test, activation=keras_smelu.SmeLU(beta=0.5))  # doctest: +SKIP
    """
    return WarmStart(path, optimizer=optimizer, learning_rate=learning_rate, match=match)


# --- building blocks ---


def _check_common(
    embedding_dim: int, hidden: Sequence[int], normalization: str | None, dropout: float
) -> None:
    if int(embedding_dim) != embedding_dim or embedding_dim < 1:
        raise ValueError(f"`embedding_dim` must be an integer >= 1. Received: {embedding_dim!r}")
    if isinstance(hidden, int) or any(int(u) != u or u < 1 for u in hidden):
        raise ValueError(
            f"`hidden` must be a sequence of integers >= 1 (units per layer). Received: {hidden!r}"
        )
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"`normalization` must be one of {NORMALIZATIONS}. Received: {normalization!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout!r}")


def _feature_inputs(
    spec: FeatureSpec, embedding_dim: int
) -> tuple[dict[str, keras.KerasTensor], list[keras.KerasTensor]]:
    """One `keras.Input` per feature, and the tensors to concatenate (embeddings, numerics)."""
    inputs: dict[str, keras.KerasTensor] = {}
    features: list[keras.KerasTensor] = []
    bag_weights = set(spec.bags.values())
    for feature, size in spec.categorical.items():
        embedding = keras.layers.Embedding(
            int(size), int(embedding_dim), name=f"{feature}_embedding"
        )
        if feature in spec.bags:
            weights_name = spec.bags[feature]
            ids = keras.Input(shape=(None,), dtype="int32", name=feature)
            weights = keras.Input(shape=(None,), dtype="float32", name=weights_name)
            inputs[feature], inputs[weights_name] = ids, weights
            pooled = keras.layers.Dot(axes=(1, 1), name=f"{feature}_pooled")
            features.append(pooled([weights, embedding(ids)]))
        else:
            inputs[feature] = keras.Input(shape=(1,), dtype="int32", name=feature)
            flat = keras.layers.Flatten(name=f"{feature}_flat")
            features.append(flat(embedding(inputs[feature])))
    for feature in spec.numeric:
        if feature not in bag_weights:
            inputs[feature] = keras.Input(shape=(1,), dtype="float32", name=feature)
            features.append(inputs[feature])
    return inputs, features


def _concat(features: Sequence[keras.KerasTensor]) -> keras.KerasTensor:
    if len(features) == 1:
        return features[0]
    return keras.layers.Concatenate(name="features")(features)


def _activation_layer(activation: Activation, name: str) -> keras.layers.Layer:
    """A fresh activation layer: a clone of a layer instance, else `keras.layers.Activation`."""
    if isinstance(activation, keras.layers.Layer):
        config = activation.get_config()
        config["name"] = name
        return activation.__class__.from_config(config)
    try:
        return keras.layers.Activation(activation, name=name)
    except ValueError as e:
        raise ValueError(
            "`activation` must be a known activation name, a callable or a Keras layer. "
            f"Received: {activation!r} ({e})"
        ) from None


def _mlp(
    x: keras.KerasTensor,
    hidden: Sequence[int],
    activation: Activation,
    normalization: str | None,
    dropout: float,
    *,
    prefix: str,
) -> keras.KerasTensor:
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(int(units), use_bias=normalization is None, name=f"{prefix}_{i}")(x)
        if normalization == "layer":
            x = keras.layers.LayerNormalization(name=f"{prefix}_{i}_norm")(x)
        elif normalization == "batch":
            x = keras.layers.BatchNormalization(name=f"{prefix}_{i}_norm")(x)
        x = _activation_layer(activation, f"{prefix}_{i}_activation")(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name=f"{prefix}_{i}_dropout")(x)
    return x


def _finish(
    inputs: dict[str, keras.KerasTensor],
    x: keras.KerasTensor,
    spec: FeatureSpec,
    optimizer: str | keras.optimizers.Optimizer,
    learning_rate: float,
    name: str,
) -> keras.Model:
    binary = spec.task == "binary"
    logit = keras.layers.Dense(1, activation="sigmoid" if binary else None, name="output")(x)
    output = keras.layers.Reshape((), name="prediction")(logit)
    model = keras.Model(inputs=inputs, outputs=output, name=name)
    model.compile(
        optimizer=_optimizer(optimizer, learning_rate),
        loss="binary_crossentropy" if binary else "mse",
        metrics=[keras.metrics.AUC(name="auc")]
        if binary
        else [keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


def _optimizer(
    optimizer: str | keras.optimizers.Optimizer, learning_rate: float
) -> keras.optimizers.Optimizer:
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer.__class__.from_config(optimizer.get_config())
    if not isinstance(optimizer, str):
        raise ValueError(
            f"`optimizer` must be a name or a keras.optimizers.Optimizer. Received: {optimizer!r}"
        )
    if not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be > 0. Received: {learning_rate!r}")
    return keras.optimizers.get(
        {"class_name": optimizer, "config": {"learning_rate": float(learning_rate)}}
    )
