"""A smooth comparator (softplus, swish, GELU) with a smoothness scale, as a layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import keras

from keras_smelu import activations
from keras_smelu.activations import check_comparator, check_width

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@keras.saving.register_keras_serializable(package="keras_smelu")
class ScaledActivation(keras.layers.Layer):
    """A smooth comparator activation with a smoothness scale: `smooth_<family>(x, scale)`.

    `family="softplus"` is `softplus(scale * x) / scale`, `"swish"` is
    `x * sigmoid(scale * x)`, `"gelu"` is `x * Phi(scale * x)`; a larger `scale` is closer to
    ReLU. `keras_smelu.activations.scale_to_beta(family, scale)` gives the SmeLU width of equal
    curvature at 0, which places these on SmeLU's width axis.

    Args:
        family: `"gelu"`, `"swish"` or `"softplus"`.
        scale: The positive scale `s`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> layer = keras_smelu.ScaledActivation("swish", scale=2.0)
    >>> layer(keras.ops.convert_to_tensor([-1.0, 0.0, 1.0]))  # doctest: +SKIP
    """

    def __init__(
        self,
        family: Literal["gelu", "swish", "softplus"],
        scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.family = check_comparator(family)
        self.scale = check_width(scale, "scale", allow_zero=False)
        self._fn = getattr(activations, f"smooth_{family}")
        self.supports_masking = True
        self.built = True

    def call(self, inputs: ArrayLike) -> ArrayLike:
        return self._fn(inputs, scale=self.scale)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"family": self.family, "scale": self.scale})
        return config
