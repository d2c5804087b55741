"""Swap the activations of a built Keras model, keeping its weights.

`replace_activations` rebuilds a Sequential or functional model (nested ones included) layer by
layer with `keras.models.clone_model`, puts a new activation wherever an old one matches, and
copies every weight across. The same rebuild serves `keras_smelu.diagnostics`, which puts a
recording wrapper in place of each activation to observe its inputs.

What it can see: the `activation=` of any layer that takes one (`Dense`, `Conv*`,
`EinsumDense`, ...), and activation layers (`ReLU`, `Activation`, `LeakyReLU`, `PReLU`, `ELU`,
`Softmax`, keras-smelu's layers). What it cannot: an activation applied inside the `call` of a
subclassed model or custom layer. Where a matching activation hides there, it refuses.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

import keras

from keras_smelu.layers import GeneralizedSmeLU, ScaledActivation, SmeLU
from keras_smelu.layers._parametric import ParametricActivation

__all__ = ["Replacement", "SwapResult", "activation_name", "replace_activations"]

# Layers that are an activation as a whole (their input is the pre-activation).
ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
    ParametricActivation,
    ScaledActivation,
)
# Names of layers whose class name does not snake-case to the name users write.
_LAYER_NAMES = {SmeLU: "smelu", GeneralizedSmeLU: "generalized_smelu", keras.layers.PReLU: "prelu"}


class SwapError(ValueError):
    """A model (or part of it) cannot be rebuilt with swapped activations."""


@dataclasses.dataclass(frozen=True)
class Replacement:
    """One activation that was swapped.

    Attributes:
        layer: Path of the layer in the model, nested model names first (`"tower/dense_1"`).
        kind: `"argument"` (the layer's `activation=`) or `"layer"` (an activation layer,
            replaced as a whole under its old name).
        old: Name of the old activation (`activation_name`).
        new: Description of the new one.
    """

    layer: str
    kind: Literal["argument", "layer"]
    old: str
    new: str


class SwapResult(NamedTuple):
    """What `replace_activations` returns: `model, replaced = replace_activations(...)`.

    Attributes:
        model: The new model, with the original's weights.
        replaced: One `Replacement` per swapped activation, in model order.
    """

    model: keras.Model
    replaced: tuple[Replacement, ...]

    def __str__(self) -> str:
        if not self.replaced:
            return f"{self.model.name}: no activation replaced"
        rows = [("layer", "kind", "old", "new")]
        rows += [(r.layer, r.kind, r.old, r.new) for r in self.replaced]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        return f"{self.model.name}: {len(self.replaced)} activation(s) replaced\n" + "\n".join(
            lines
        )


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def activation_name(activation: Callable[..., Any] | keras.layers.Layer) -> str:
    """Returns the name `match` compares against: what users write for that activation.

    A function gives its `__name__` (`"relu"`, `"smelu"`; a `functools.partial` the name of the
    function it wraps). An `Activation` layer gives the name of its function. A `ReLU` layer is
    `"relu"` only with its default arguments (otherwise e.g. `"relu(max_value=6.0)"`, which
    `"relu"` does not match). keras-smelu's layers give their registered names (`"smelu"`,
    `"generalized_smelu"`, `"smooth_<family>"`); other layers their snake-cased class name
    (`"leaky_re_lu"` is spelled `"leaky_relu"`, `"prelu"`, `"elu"`, `"softmax"`).

    Args:
        activation: A function or an activation layer.

    Returns:
        The name, a string.

    Example:

    >>> activation_name(keras.layers.Dense(2, activation="relu").activation)
    'relu'
    """
    if isinstance(activation, keras.layers.Activation):
        return activation_name(activation.activation)
    if isinstance(activation, keras.layers.ReLU):
        config = activation.get_config()
        extras = {
            key: config[key]
            for key, default in (("max_value", None), ("negative_slope", 0.0), ("threshold", 0.0))
            if config.get(key) not in (default,)
        }
        if not extras:
            return "relu"
        return "relu(" + ", ".join(f"{k}={v!r}" for k, v in extras.items()) + ")"
    if isinstance(activation, ScaledActivation):
        return f"smooth_{activation.family}"
    if isinstance(activation, keras.layers.Layer):
        cls = type(activation)
        if cls in _LAYER_NAMES:
            return _LAYER_NAMES[cls]
        return _snake_case(cls.__name__).replace("re_lu", "relu")
    fn = activation.func if isinstance(activation, functools.partial) else activation
    return getattr(fn, "__name__", type(fn).__name__)


def describe_activation(activation: Callable[..., Any] | keras.layers.Layer) -> str:
    """A short readable description, with the configured widths of keras-smelu's layers."""
    if isinstance(activation, ParametricActivation):
        args = [f"{k}={v:g}" for k, v in activation.values.items()]
        if activation.learnable:
            args.append("learnable" + (", per_unit" if activation.per_unit else ""))
        return f"{type(activation).__name__}({', '.join(args)})"
    if isinstance(activation, ScaledActivation):
        return f"ScaledActivation({activation.family!r}, scale={activation.scale:g})"
    if isinstance(activation, keras.layers.Layer) and not isinstance(
        activation, keras.layers.Activation
    ):
        return type(activation).__name__
    return activation_name(activation)


@dataclasses.dataclass(frozen=True)
class Site:
    """Where an activation sits: an activation layer, or a layer's `activation=` argument."""

    layer: keras.layers.Layer
    path: str
    kind: Literal["argument", "layer"]
    activation: Callable[..., Any] | keras.layers.Layer


def _is_graph_model(model: keras.layers.Layer) -> bool:
    """Sequential and functional models are rebuilt layer by layer; others have their own call."""
    if isinstance(model, keras.Sequential):
        return True
    call_module = getattr(type(model).call, "__module__", "") or ""
    return hasattr(model, "operations") and call_module.startswith("keras.")


def site_of(layer: keras.layers.Layer, path: str) -> Site | None:
    """The activation site of one (non-model) layer, or None if it has none."""
    if isinstance(layer, ACTIVATION_LAYERS):
        return Site(layer, path, "layer", layer)
    activation = getattr(layer, "activation", None)
    if callable(activation) and "activation" in layer.get_config():
        return Site(layer, path, "argument", activation)
    return None


def _sublayers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Layers held in a layer's attributes (directly or in lists, tuples and dicts)."""
    for value in vars(layer).values():
        items = value.values() if isinstance(value, dict) else value
        if isinstance(value, keras.layers.Layer):
            items = [value]
        elif not isinstance(value, (list, tuple, dict)):
            continue
        for item in items:
            if isinstance(item, keras.layers.Layer) and item is not layer:
                yield item


def hidden_sites(layer: keras.layers.Layer, path: str, seen: set[int] | None = None) -> list[Site]:
    """Activation sites inside a layer that a rebuild from configs cannot reach."""
    seen = set() if seen is None else seen
    found = []
    for sub in _sublayers(layer):
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        sub_path = f"{path}/{sub.name}"
        site = site_of(sub, sub_path) if not isinstance(sub, keras.Model) else None
        if site is not None:
            found.append(site)
        found.extend(hidden_sites(sub, sub_path, seen))
    return found


def _layer_paths(
    model: keras.Model, prefix: str = "", paths: dict[int, str] | None = None
) -> dict[int, str]:
    """`id(layer) -> "outer/inner/layer"` for every layer of a (nested) graph model."""
    paths = {} if paths is None else paths
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        paths.setdefault(id(layer), path)
        if isinstance(layer, keras.Model) and _is_graph_model(layer):
            _layer_paths(layer, prefix=f"{path}/", paths=paths)
    return paths


def _activation_weights(
    activation: Callable[..., Any] | keras.layers.Layer,
) -> list[keras.Variable]:
    return activation.weights if isinstance(activation, keras.layers.Layer) else []


def _copy_variables(
    old_vars: Sequence[keras.Variable], new_vars: Sequence[keras.Variable], path: str
) -> None:
    if [tuple(v.shape) for v in old_vars] != [tuple(v.shape) for v in new_vars]:
        raise SwapError(
            f"The rebuilt layer {path!r} does not have the weights of the original; expected "
            f"shapes {[tuple(v.shape) for v in old_vars]}, received: "
            f"{[tuple(v.shape) for v in new_vars]}"
        )
    for old, new in zip(old_vars, new_vars, strict=True):
        # Through NumPy: sharing one JAX buffer would let a donating jit step delete the other's.
        new.assign(keras.ops.convert_to_numpy(old))


def _build_argument_activation(host: keras.layers.Layer) -> None:
    """Builds an activation layer held by `host` (Keras builds those lazily, at first call)."""
    activation = host.activation
    if not isinstance(activation, keras.layers.Layer) or activation.built:
        return
    try:
        output = host.output
    except (AttributeError, ValueError):  # the layer was never called in the graph
        return
    activation(keras.KerasTensor(output.shape, dtype=output.dtype))


def _recreate(layer: keras.layers.Layer, path: str) -> keras.layers.Layer:
    try:
        return type(layer).from_config(layer.get_config())
    except Exception as e:
        raise SwapError(
            f"Cannot rebuild layer {path!r}: a {type(layer).__name__} cannot be re-created from "
            "its config (does it implement get_config?); received: "
            f"{type(e).__name__}: {e}"
        ) from e


def rebuild(
    model: keras.Model,
    choose: Callable[[Site], Callable[..., Any] | keras.layers.Layer | None],
    *,
    refuse: Callable[[Site], bool],
) -> tuple[keras.Model, list[tuple[Site, Callable[..., Any] | keras.layers.Layer]]]:
    """Clones a graph model, putting `choose(site)` (when not None) in place of activations.

    `choose` returns the new activation: a function, or a layer used as it is (for a `"layer"`
    site it replaces the layer, so it should carry the old layer's name). Every weight is copied
    from the original except those of replaced activation layers. A site for which `refuse` is
    true and that a rebuild cannot reach (in a subclassed part) raises `SwapError`.

    Args:
        model: A built Sequential or functional `keras.Model`; left unchanged.
        choose: Called with every activation site; returns the activation to put there, or
            None to keep the old one.
        refuse: Called with each site hidden in a subclassed part; True makes the rebuild
            fail there instead of leaving that activation as it is.

    Returns:
        The new model and the `(site, new activation)` pairs that were put in, in model order.
    """
    if not isinstance(model, keras.Model):
        raise SwapError(f"`model` must be a keras.Model; received: {type(model).__name__}")
    if not _is_graph_model(model):
        raise SwapError(
            f"Cannot rebuild model {model.name!r}: it is a subclassed model (class "
            f"{type(model).__name__}) whose `call` decides where its activations apply, which a "
            "rebuild cannot see. Swap the activation in its code, or build it as a Sequential or "
            f"functional model; received: {type(model).__name__}"
        )
    paths = _layer_paths(model)
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer, Site | None, Any]] = []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        path = paths.get(id(layer), layer.name)
        if isinstance(layer, keras.Model):
            kind, site = "nested subclassed model", None
        else:
            kind, site = "custom layer", site_of(layer, path)
        if site is None:
            blocked = [s.path for s in hidden_sites(layer, path) if refuse(s)]
            if blocked:
                raise SwapError(
                    f"Cannot rebuild the {kind} {path!r} (class {type(layer).__name__}): "
                    f"matching activations sit inside it ({', '.join(blocked)}), where a "
                    "rebuild from its config cannot replace them. Build that part from "
                    f"Sequential or functional models; received: {type(layer).__name__}"
                )
        new_activation = choose(site) if site is not None else None
        if new_activation is None:
            new_layer = _recreate(layer, path)
        elif site.kind == "layer":
            new_layer = new_activation
            if not isinstance(new_layer, keras.layers.Layer):
                new_layer = keras.layers.Activation(
                    new_activation, name=layer.name, dtype=layer.dtype_policy
                )
        else:
            config = layer.get_config()
            config["activation"] = new_activation
            new_layer = type(layer).from_config(config)
        pairs.append((layer, new_layer, site, new_activation))
        return new_layer

    new_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new, site, new_activation in pairs:
        if new_activation is not None and site.kind == "layer":
            continue  # a new activation layer: nothing of the old one carries over
        if site is not None and site.kind == "argument":
            _build_argument_activation(new)
            skip_old = {id(v) for v in _activation_weights(old.activation)}
            skip_new = {id(v) for v in _activation_weights(new.activation)}
            if new_activation is not None:
                old_vars = [v for v in old.weights if id(v) not in skip_old]
                new_vars = [v for v in new.weights if id(v) not in skip_new]
                _copy_variables(old_vars, new_vars, site.path)
                continue
        if not new.built and old.built and old.weights:
            raise SwapError(
                f"Cannot copy the weights of layer {paths.get(id(old), old.name)!r}: its rebuilt "
                "copy was not built; received: an unbuilt "
                f"{type(new).__name__}"
            )
        _copy_variables(old.weights, new.weights, paths.get(id(old), old.name))
    if model.compiled:
        # clone_model compiled the copy before the activation layers above were built; compile
        # again so that the optimizer tracks their weights too.
        new_model.compile_from_config(model.get_compile_config())
    return new_model, [(site, act) for _, _, site, act in pairs if act is not None]


def _check_match(match: str | Sequence[str]) -> tuple[str, ...]:
    names = (match,) if isinstance(match, str) else match
    try:
        names = tuple(names)
    except TypeError:
        names = ()
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            "Argument `match` must be an activation name or a non-empty sequence of names "
            f"(e.g. 'relu' or ('relu', 'gelu')); received: match={match!r}"
        )
    return names


def _check_activation(
    activation: str | Callable[..., Any] | keras.layers.Layer,
) -> Callable[[str | None, Any], Callable[..., Any] | keras.layers.Layer]:
    """Validates `activation`; returns a factory `(name, dtype) -> a fresh activation`."""
    if isinstance(activation, str):
        try:
            fn = keras.activations.get(activation)
        except ValueError as e:
            raise ValueError(
                "Argument `activation` names no known activation (for keras-smelu's, "
                f"`import keras_smelu` first); received: activation={activation!r}"
            ) from e
        return lambda name, dtype: fn
    if isinstance(activation, keras.layers.Layer):
        config = activation.get_config()

        def fresh(name, dtype):
            layer_config = dict(config, dtype=dtype)
            layer_config.pop("name", None)
            if name is not None:
                layer_config["name"] = name
            return type(activation).from_config(layer_config)

        try:
            fresh(None, activation.dtype_policy)
        except Exception as e:
            raise ValueError(
                "Argument `activation` is a layer that cannot be re-created from its config, "
                f"which each replacement needs; received: activation={activation!r}"
            ) from e
        return fresh
    if callable(activation):
        return lambda name, dtype: activation
    raise ValueError(
        "Argument `activation` must be an activation name, a function or a layer such as "
        f"keras_smelu.SmeLU(beta=0.5); received: activation={activation!r}"
    )


def replace_activations(
    model: keras.Model,
    activation: str | Callable[..., Any] | keras.layers.Layer,
    *,
    match: str | Sequence[str] = "relu",
) -> SwapResult:
    """Returns a new model, with the same weights, in which matching activations are replaced.

    `new(x) = model(x)` with every activation `a` where `activation_name(a) in match` replaced
    by `activation`. Replaced are the `activation=` of layers that take one (`Dense`, `Conv*`,
    `EinsumDense`, ...) and activation layers (`ReLU`, `Activation("relu")`, ...), in
    Sequential, functional and nested models, including ones loaded from `.keras` files. Every
    weight is copied from `model` (which is left unchanged); a replaced activation layer's own
    weights (a learnable width) are not: the new activation is created afresh from its config,
    once per use, so learnable widths are trained separately per layer. An activation layer that
    is replaced as a whole keeps its old name. A compiled model's copy is compiled from its
    compile config (a fresh optimizer state).

    Args:
        model: A built Sequential or functional `keras.Model`. Subclassed models, and nested
            parts whose `call` applies matching activations itself, are refused.
        activation: The new activation: a name (`"smelu"`, `"gelu"`), a function, or a layer
            such as `keras_smelu.SmeLU(beta=0.5)` (re-created from its config for every use,
            with the dtype policy of the layer it goes into).
        match: Name or names of the activations to replace, as `activation_name` gives them
            (`"relu"`, `"smelu"`, `"gelu"`, ...). A `ReLU` layer with a `max_value`, slope or
            threshold is not `"relu"`.

    Returns:
        A `SwapResult` `(model, replaced)`: the new model and one `Replacement` per swapped
        activation; `print(result)` shows them as a table. A warning says when nothing matched.

    Raises:
        ValueError: for an invalid `activation` or `match`, or a model it cannot rebuild
            (subclassed, or hiding a matching activation in a custom layer's `call`).

    Example:

    >>> relu_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...                                keras.layers.Dense(1)])
    >>> new_model, replaced = replace_activations(relu_model, keras_smelu.SmeLU(beta=0.5))
    >>> [(r.layer, r.old, r.new) for r in replaced]  # doctest: +SKIP
    [('dense', 'relu', 'SmeLU(beta=0.5)')]
    """
    names = _check_match(match)
    fresh = _check_activation(activation)

    def choose(site: Site) -> Callable[..., Any] | keras.layers.Layer | None:
        if activation_name(site.activation) not in names:
            return None
        name = site.layer.name if site.kind == "layer" else None
        return fresh(name, site.layer.dtype_policy)

    new_model, swapped = rebuild(
        model, choose, refuse=lambda site: activation_name(site.activation) in names
    )
    replaced = tuple(
        Replacement(
            site.path, site.kind, activation_name(site.activation), describe_activation(new)
        )
        for site, new in swapped
    )
    if not replaced:
        warnings.warn(
            f"replace_activations found no activation named {list(names)} in model "
            f"{model.name!r}; the copy is unchanged.",
            stacklevel=2,
        )
    return SwapResult(new_model, replaced)
