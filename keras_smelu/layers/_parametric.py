"""The shared mechanism of activation layers with fixed or learnable parameters.

A parameter is either a Python float (a weightless layer) or a weight. Positive parameters
(widths) are stored as their logarithm, so they stay positive at every training step by
construction; initializers, regularizers and constraints are given in the parameter's own
units, as a Keras user writes them, and are translated to the stored logarithm here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from keras import constraints, initializers, layers, ops, regularizers
from keras.layers import InputSpec

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# Widths never go below this, whatever a constraint returns (exp of the stored log is > 0).
_MIN_WIDTH = 1e-6


class _LogInitializer:
    """Initializes a log-width from an initializer of the width itself."""

    def __init__(self, width_initializer: Callable[..., ArrayLike]) -> None:
        self.width_initializer = width_initializer

    def __call__(self, shape: tuple[int, ...], dtype: str | None = None) -> ArrayLike:
        width = self.width_initializer(shape, dtype=dtype)
        return ops.log(ops.maximum(width, _MIN_WIDTH))


class _OnWidth:
    """Applies a width regularizer or constraint to the stored log-width."""

    def __init__(self, fn: Callable[[ArrayLike], ArrayLike], is_constraint: bool) -> None:
        self.fn = fn
        self.is_constraint = is_constraint

    def __call__(self, log_width: ArrayLike) -> ArrayLike:
        value = self.fn(ops.exp(log_width))
        return ops.log(ops.maximum(value, _MIN_WIDTH)) if self.is_constraint else value


class ParametricActivation(layers.Layer):
    """Base class: an elementwise activation whose parameters may be learned.

    Subclasses list their parameters in `PARAMETERS` as `(name, positive)` pairs, validate
    their values in `__init__` and implement `activation(inputs, **params)`.

    Args:
        values: The validated value of each parameter in `PARAMETERS`, by name: the fixed
            values, or the initial ones of a learnable layer.
        learnable: If True, the parameters are weights trained with the model (positive ones
            through their logarithm). Keras's own `trainable` flag keeps its meaning: a
            learnable layer with `trainable=False` holds its weights frozen.
        per_unit: If True (and learnable), one parameter per unit of the input (every axis
            but the batch axis, minus `shared_axes`), as in `keras.layers.PReLU`; otherwise a
            single value per layer.
        shared_axes: Axes along which per-unit parameters are shared, e.g. `[1, 2]` for one
            value per channel of a `(batch, height, width, channels)` input.
        **kwargs: `<name>_initializer`, `<name>_regularizer` and `<name>_constraint` for each
            parameter (as Keras layers name theirs), then base layer keyword arguments.
    """

    PARAMETERS: tuple[tuple[str, bool], ...] = ()

    def __init__(
        self,
        values: dict[str, float],
        learnable: bool = False,
        per_unit: bool = False,
        shared_axes: int | Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        options = {
            kind: {name: kwargs.pop(f"{name}_{kind}", None) for name, _ in self.PARAMETERS}
            for kind in ("initializer", "regularizer", "constraint")
        }
        super().__init__(**kwargs)
        self.supports_masking = True
        if not isinstance(learnable, bool):
            raise ValueError(
                f"Argument `learnable` must be a bool. Received: learnable={learnable!r}"
            )
        if (per_unit or shared_axes is not None) and not learnable:
            raise ValueError(
                "Arguments `per_unit` and `shared_axes` apply to learnable parameters only; "
                f"pass learnable=True. Received: per_unit={per_unit}, shared_axes={shared_axes}"
            )
        if shared_axes is not None and not per_unit:
            raise ValueError(
                "Argument `shared_axes` needs per_unit=True (a per-layer value shares every "
                f"axis already). Received: shared_axes={shared_axes}"
            )
        self.values = dict(values)
        self.learnable = learnable
        self.per_unit = bool(per_unit)
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, (list, tuple)):
            self.shared_axes = [int(a) for a in shared_axes]
        else:
            self.shared_axes = [int(shared_axes)]
        if self.shared_axes is not None and any(a < 1 for a in self.shared_axes):
            raise ValueError(
                "Argument `shared_axes` must hold axes >= 1 (axis 0 is the batch). "
                f"Received: shared_axes={shared_axes}"
            )
        self.param_initializers = {
            name: initializers.get(init) or initializers.Constant(values[name])
            for name, init in options["initializer"].items()
        }
        self.param_regularizers = {
            name: regularizers.get(reg) for name, reg in options["regularizer"].items()
        }
        self.param_constraints = {
            name: constraints.get(con) for name, con in options["constraint"].items()
        }
        if not learnable:
            self.built = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if not self.learnable:
            return
        shape = ()
        if self.per_unit:
            shape = list(input_shape[1:])
            for axis in self.shared_axes or ():
                if axis >= len(input_shape):
                    raise ValueError(
                        f"Argument `shared_axes` names axis {axis}, but the input has rank "
                        f"{len(input_shape)}. Received input_shape={input_shape}"
                    )
                shape[axis - 1] = 1
            if any(n is None for n in shape):
                raise ValueError(
                    "per_unit=True needs every non-batch axis known or shared. "
                    f"Received input_shape={input_shape}, shared_axes={self.shared_axes}"
                )
            axes = {
                i: input_shape[i]
                for i in range(1, len(input_shape))
                if i not in (self.shared_axes or ())
            }
            self.input_spec = InputSpec(ndim=len(input_shape), axes=axes)
        for name, positive in self.PARAMETERS:
            init = self.param_initializers[name]
            reg = self.param_regularizers[name]
            con = self.param_constraints[name]
            if positive:
                init = _LogInitializer(init)
                reg = _OnWidth(reg, is_constraint=False) if reg is not None else None
                con = _OnWidth(con, is_constraint=True) if con is not None else None
            weight = self.add_weight(
                shape=shape,
                name=f"log_{name}" if positive else name,
                initializer=init,
                regularizer=reg,
                constraint=con,
                # Kept in the variable dtype under mixed precision: exp() of a float16 log
                # is 0.8% off near 1e-5, and sums of per-example gradients overflow float16.
                autocast=False,
            )
            setattr(self, f"_{name}_weight", weight)

    def parameter_values(self) -> dict[str, float | ArrayLike]:
        """Returns the parameters in their own units: floats, or tensors when learnable."""
        if not self.learnable:
            return dict(self.values)
        out = {}
        for name, positive in self.PARAMETERS:
            weight = ops.convert_to_tensor(getattr(self, f"_{name}_weight"))
            out[name] = ops.exp(weight) if positive else weight
        return out

    def activation(self, inputs: ArrayLike, **params: float | ArrayLike) -> ArrayLike:
        raise NotImplementedError

    def call(self, inputs: ArrayLike) -> ArrayLike:
        return self.activation(inputs, **self.parameter_values())

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self.values)
        config.update({"learnable": self.learnable, "per_unit": self.per_unit})
        config["shared_axes"] = self.shared_axes
        for name, _ in self.PARAMETERS:
            config[f"{name}_initializer"] = initializers.serialize(self.param_initializers[name])
            config[f"{name}_regularizer"] = regularizers.serialize(self.param_regularizers[name])
            config[f"{name}_constraint"] = constraints.serialize(self.param_constraints[name])
        return config
