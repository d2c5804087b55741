"""The generalized SmeLU layer: two lines joined by a quadratic, fixed or learnable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from keras_smelu import activations
from keras_smelu.activations import DEFAULT_BETA, check_band, check_slope
from keras_smelu.layers._parametric import ParametricActivation

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@keras.saving.register_keras_serializable(package="keras_smelu")
class GeneralizedSmeLU(ParametricActivation):
    """Generalized SmeLU (g-SmeLU) activation layer.

    Formula (`u = x + alpha`, `w = alpha + beta`):
    ``` python
    f(x) = slope_left * x                                       if x <= -alpha
    f(x) = slope_left * x + (slope_right - slope_left) * u**2 / (2 * w)   in between
    f(x) = f(beta) + slope_right * (x - beta)                   if x >= beta
    ```
    `GeneralizedSmeLU(alpha=b, beta=b, slope_left=0, slope_right=1)` is `SmeLU(beta=b)`.

    Args:
        alpha: Left half-width, `>= 0` (`> 0` when learnable).
        beta: Right half-width, `>= 0` (`> 0` when learnable); `alpha + beta > 0`.
        slope_left: Slope of the left line, e.g. 0.1 for a leaky variant.
        slope_right: Slope of the right line. Each parameter is a number, or a 0-d NumPy
            array or tensor (stored as a float).
        learnable: If True, all four parameters are weights (the widths stored as
            logarithms, so they stay positive). `trainable` keeps Keras's meaning.
        per_unit: With `learnable`, one set of parameters per unit, as in `PReLU`.
        shared_axes: With `per_unit`, the axes that share parameters.
        alpha_initializer: Initializer of `alpha`, in width units. Defaults to
            `Constant(alpha)`.
        beta_initializer: Initializer of `beta`, in width units. Defaults to `Constant(beta)`.
        slope_left_initializer: Initializer of `slope_left`. Defaults to
            `Constant(slope_left)`.
        slope_right_initializer: Initializer of `slope_right`. Defaults to
            `Constant(slope_right)`.
        alpha_regularizer: Regularizer applied to `alpha` (not its logarithm).
        beta_regularizer: Regularizer applied to `beta` (not its logarithm).
        slope_left_regularizer: Regularizer applied to `slope_left`.
        slope_right_regularizer: Regularizer applied to `slope_right`.
        alpha_constraint: Constraint applied to `alpha` after each update; results below 1e-6
            are raised to 1e-6.
        beta_constraint: Constraint applied to `beta` after each update, as for `alpha`.
        slope_left_constraint: Constraint applied to `slope_left` after each update.
        slope_right_constraint: Constraint applied to `slope_right` after each update.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> layer = keras_smelu.GeneralizedSmeLU(alpha=1.0, beta=1.0, slope_left=0.1)
    >>> layer(keras.ops.convert_to_tensor([-2.0, 0.0, 2.0]))  # doctest: +SKIP
    [-0.2, 0.275, 1.9]

    Reference:
        - [Shamir et al., 2020](https://arxiv.org/abs/2010.09931)
    """

    PARAMETERS = (("alpha", True), ("beta", True), ("slope_left", False), ("slope_right", False))

    def __init__(
        self,
        alpha: float | ArrayLike = DEFAULT_BETA,
        beta: float | ArrayLike = DEFAULT_BETA,
        slope_left: float | ArrayLike = 0.0,
        slope_right: float | ArrayLike = 1.0,
        learnable: bool = False,
        per_unit: bool = False,
        shared_axes: int | Sequence[int] | None = None,
        alpha_initializer: str | keras.initializers.Initializer | None = None,
        beta_initializer: str | keras.initializers.Initializer | None = None,
        slope_left_initializer: str | keras.initializers.Initializer | None = None,
        slope_right_initializer: str | keras.initializers.Initializer | None = None,
        alpha_regularizer: str | keras.regularizers.Regularizer | None = None,
        beta_regularizer: str | keras.regularizers.Regularizer | None = None,
        slope_left_regularizer: str | keras.regularizers.Regularizer | None = None,
        slope_right_regularizer: str | keras.regularizers.Regularizer | None = None,
        alpha_constraint: str | keras.constraints.Constraint | None = None,
        beta_constraint: str | keras.constraints.Constraint | None = None,
        slope_left_constraint: str | keras.constraints.Constraint | None = None,
        slope_right_constraint: str | keras.constraints.Constraint | None = None,
        **kwargs: Any,
    ) -> None:
        alpha, beta = check_band(alpha, beta, allow_zero=not learnable)
        values = {
            "alpha": alpha,
            "beta": beta,
            "slope_left": check_slope(slope_left, "slope_left"),
            "slope_right": check_slope(slope_right, "slope_right"),
        }
        super().__init__(
            values,
            learnable=learnable,
            per_unit=per_unit,
            shared_axes=shared_axes,
            alpha_initializer=alpha_initializer,
            beta_initializer=beta_initializer,
            slope_left_initializer=slope_left_initializer,
            slope_right_initializer=slope_right_initializer,
            alpha_regularizer=alpha_regularizer,
            beta_regularizer=beta_regularizer,
            slope_left_regularizer=slope_left_regularizer,
            slope_right_regularizer=slope_right_regularizer,
            alpha_constraint=alpha_constraint,
            beta_constraint=beta_constraint,
            slope_left_constraint=slope_left_constraint,
            slope_right_constraint=slope_right_constraint,
            **kwargs,
        )

    def activation(
        self,
        inputs: ArrayLike,
        alpha: float | ArrayLike,
        beta: float | ArrayLike,
        slope_left: float | ArrayLike,
        slope_right: float | ArrayLike,
    ) -> ArrayLike:
        return activations.generalized_smelu(inputs, alpha, beta, slope_left, slope_right)
