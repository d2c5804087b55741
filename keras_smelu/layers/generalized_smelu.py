"""The generalized SmeLU layer: two lines joined by a quadratic, fixed or learnable."""

from __future__ import annotations

import keras

from keras_smelu import activations
from keras_smelu.activations import DEFAULT_BETA, _check_band, _check_slope
from keras_smelu.layers._parametric import ParametricActivation


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
        alpha_initializer, beta_initializer, slope_left_initializer,
        slope_right_initializer: Initializers, in the parameters' own units. Default to
            constants at the given values.
        alpha_regularizer, beta_regularizer, slope_left_regularizer,
        slope_right_regularizer: Regularizers of the parameters.
        alpha_constraint, beta_constraint, slope_left_constraint,
        slope_right_constraint: Constraints of the parameters.
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
        alpha=DEFAULT_BETA,
        beta=DEFAULT_BETA,
        slope_left=0.0,
        slope_right=1.0,
        learnable=False,
        per_unit=False,
        shared_axes=None,
        **kwargs,
    ):
        alpha, beta = _check_band(alpha, beta, allow_zero=not learnable)
        values = {
            "alpha": alpha,
            "beta": beta,
            "slope_left": _check_slope(slope_left, "slope_left"),
            "slope_right": _check_slope(slope_right, "slope_right"),
        }
        super().__init__(
            values,
            learnable=learnable,
            per_unit=per_unit,
            shared_axes=shared_axes,
            **kwargs,
        )

    def activation(self, inputs, alpha, beta, slope_left, slope_right):
        return activations.generalized_smelu(inputs, alpha, beta, slope_left, slope_right)
