"""SmeLU, generalized SmeLU and smooth comparator activations.

Flat functions over `keras.ops`, like `keras.activations`: they run on every Keras backend.
SmeLU and g-SmeLU carry their own gradient rule (`_gradients.py`), so the backward pass keeps a
single tensor, as ReLU's does, and is exact at the joints where autodiff of `clip` is not.
"""

from __future__ import annotations

import math
import numbers

from keras import backend, ops

from keras_smelu import _gradients

DEFAULT_BETA = 0.5
"""Default SmeLU half-width.

Pre-activations of a He-initialised or normalised layer have a standard deviation near 1; a
half-width of 0.5 smooths the band of about +-0.5 standard deviations (~40% of units at
initialisation) and leaves the rest exactly as ReLU would. Without normalisation trained
pre-activations are often much smaller (standard deviations of 0.05-0.3, docs/findings.md),
where a narrower width is better: the tuner (`keras_smelu.tuning`) maps that trade-off.
"""


def _check_width(value, name: str, *, allow_zero: bool = True) -> float:
    """Validates a Python width argument and returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"Argument `{name}` must be a non-negative real number. Received: {name}={value!r}"
        )
    value = float(value)
    low_ok = value >= 0 if allow_zero else value > 0
    if math.isnan(value) or math.isinf(value) or not low_ok:
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"Argument `{name}` must be {expected}. Received: {name}={value}")
    return value


def _check_band(alpha, beta, *, allow_zero: bool = True) -> tuple[float, float]:
    """Validates g-SmeLU's half-widths: each a width, their sum (the band) positive."""
    alpha = _check_width(alpha, "alpha", allow_zero=allow_zero)
    beta = _check_width(beta, "beta", allow_zero=allow_zero)
    if alpha + beta <= 0:
        raise ValueError(
            "Arguments `alpha` and `beta` must not both be 0: the quadratic band needs a "
            f"positive width alpha + beta. Received: alpha={alpha}, beta={beta}"
        )
    return alpha, beta


def _check_slope(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Argument `{name}` must be a real number. Received: {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"Argument `{name}` must be finite. Received: {name}={value}")
    return value


def _is_python_value(value) -> bool:
    """True for an argument given as a plain value (to validate) rather than a tensor."""
    return value is None or isinstance(value, (numbers.Number, str))


def _below_resolution(width: float, x) -> bool:
    """A band too narrow for float16 (its `1 / width` overflows): the function is its limit,
    the piecewise-linear one, to within float16's rounding."""
    return backend.standardize_dtype(x.dtype) == "float16" and width < _gradients.FLOAT16_MIN_WIDTH


def _as_float_tensor(x):
    """Converts like Keras's float ops do: integer and boolean inputs become floatx."""
    x = ops.convert_to_tensor(x)
    if "float" not in backend.standardize_dtype(x.dtype):
        x = ops.cast(x, backend.floatx())
    return x


def smelu(x, beta=DEFAULT_BETA):
    """Smooth reLU (SmeLU) activation function.

    Zero on the left, the identity on the right and a quadratic in between, with a continuous
    gradient:

    `smelu(x) = 0` if `x <= -beta`,
    `(x + beta)**2 / (4 * beta)` if `-beta < x < beta`,
    `x` if `x >= beta`.

    It equals ReLU convolved with a box of width `2 * beta`; `beta=0` is exactly ReLU. Its
    gradient `clip((x + beta) / (2 * beta), 0, 1)` is computed from one saved tensor.

    Args:
        x: Input tensor. Integer inputs are cast to floatx; float dtypes are kept.
        beta: Half-width of the quadratic band, a non-negative float, or a tensor broadcastable
            to `x` holding positive values (a learnable width). Defaults to `DEFAULT_BETA`
            (0.5).

    Returns:
        A tensor of the same shape and (float) dtype as `x`.

    Example:

    >>> x = keras.ops.convert_to_tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    >>> keras_smelu.activations.smelu(x, beta=0.5)  # doctest: +SKIP
    [0.0, 0.0, 0.125, 0.5, 2.0]

    Reference:
        - [Shamir et al., 2020](https://arxiv.org/abs/2010.09931)
    """
    x = _as_float_tensor(x)
    if _is_python_value(beta):
        beta = _check_width(beta, "beta")
        if beta == 0.0 or _below_resolution(beta, x):
            return ops.relu(x)
        return _gradients.smelu_fixed(x, beta)
    return _gradients.smelu_tensor(x, ops.cast(beta, x.dtype))


def generalized_smelu(x, alpha=DEFAULT_BETA, beta=DEFAULT_BETA, slope_left=0.0, slope_right=1.0):
    """Generalized SmeLU (g-SmeLU) activation function.

    Two lines joined by a quadratic whose gradient ramps linearly from `slope_left` at
    `x = -alpha` to `slope_right` at `x = beta`. With `u = x + alpha` and `w = alpha + beta`:

    `y = slope_left * x` if `x <= -alpha`,
    `y = slope_left * x + (slope_right - slope_left) * u**2 / (2 * w)` in between,
    `y = y(beta) + slope_right * (x - beta)` if `x >= beta`.

    `generalized_smelu(x, b, b, 0, 1) == smelu(x, b)`.

    Args:
        x: Input tensor.
        alpha: Left half-width, `>= 0` (a float, or a tensor of positive values).
        beta: Right half-width, `>= 0`; `alpha + beta` must be positive.
        slope_left: Slope of the left line (0 for a SmeLU, e.g. 0.1 for a leaky variant).
        slope_right: Slope of the right line.

    Returns:
        A tensor of the same shape and (float) dtype as `x`.

    Example:

    >>> x = keras.ops.convert_to_tensor([-2.0, 0.0, 2.0])
    >>> keras_smelu.activations.generalized_smelu(x, 1.0, 1.0, 0.1, 1.0)  # doctest: +SKIP
    [-0.2, 0.275, 1.9]

    Reference:
        - [Shamir et al., 2020](https://arxiv.org/abs/2010.09931)
    """
    x = _as_float_tensor(x)
    params = (alpha, beta, slope_left, slope_right)
    if all(_is_python_value(p) for p in params):
        alpha, beta = _check_band(alpha, beta)
        slope_left = _check_slope(slope_left, "slope_left")
        slope_right = _check_slope(slope_right, "slope_right")
        if _below_resolution(alpha + beta, x):  # the two lines meeting at 0
            return ops.where(
                x < 0, _gradients.scaled_line(x, slope_left), _gradients.scaled_line(x, slope_right)
            )
        return _gradients.generalized_smelu_fixed(x, alpha, beta, slope_left, slope_right)
    return _gradients.generalized_smelu_tensor(
        x, *(ops.cast(ops.convert_to_tensor(p), x.dtype) for p in params)
    )


# Smooth comparators. Each has a scale `s` (larger is closer to ReLU) and a width `1 / s`.
# Matching the curvature at 0 with SmeLU (whose second derivative in the band is 1/(2 beta))
# gives the width mapping below, so every family sits on one "width" axis in the tuner.
# f''(0) for softplus(s x)/s is s/4, for x*sigmoid(s x) it is s/2, for x*Phi(s x) it is
# 2 s phi(0) = s*sqrt(2/pi).
_CURVATURE_PER_SCALE = {
    "gelu": math.sqrt(2.0 / math.pi),
    "swish": 0.5,
    "softplus": 0.25,
}
# The comparator families, in the order the tuner lists them.
COMPARATORS = tuple(_CURVATURE_PER_SCALE)


def scale_to_beta(family: str, scale: float) -> float:
    """Maps a comparator's scale `s` to the SmeLU width with the same curvature at 0.

    SmeLU's curvature in its band is `1 / (2 beta)`; `softplus(s x)/s` has `s/4` at 0,
    `x sigmoid(s x)` has `s/2` and `x Phi(s x)` has `s sqrt(2/pi)`. Equal curvature gives
    `beta = 1 / (2 k s)` with `k` the family's curvature per unit scale.

    Args:
        family: One of "softplus", "swish", "gelu".
        scale: The positive scale `s`.

    Returns:
        The equivalent SmeLU half-width.
    """
    return _equal_curvature(family, scale, "scale")


def beta_to_scale(family: str, beta: float) -> float:
    """Inverse of `scale_to_beta`: the comparator scale with SmeLU(beta)'s curvature at 0."""
    return _equal_curvature(family, beta, "beta")


def _equal_curvature(family: str, value: float, name: str) -> float:
    """`1 / (2 k value)`: scale to width and width to scale alike (the map is its own inverse)."""
    _check_comparator(family)
    value = _check_width(value, name, allow_zero=False)
    return 1.0 / (2.0 * _CURVATURE_PER_SCALE[family] * value)


def _check_comparator(family: str) -> str:
    """Returns `family` if it names a comparator family, else raises a ValueError."""
    if family not in _CURVATURE_PER_SCALE:
        raise ValueError(
            f"Argument `family` must be one of {sorted(COMPARATORS)}. Received: family={family!r}"
        )
    return family


def smooth_softplus(x, scale=1.0):
    """Softplus with a smoothness scale: `softplus(scale * x) / scale`.

    Args:
        x: Input tensor.
        scale: Positive scale; larger is closer to ReLU. `scale_to_beta("softplus", s)` gives the
            SmeLU width of equal curvature at 0.

    Returns:
        A tensor of the same shape and dtype as `x`.

    Example:

    >>> keras_smelu.activations.smooth_softplus(keras.ops.ones((2,)), scale=2.0)  # doctest: +SKIP
    """
    x = _as_float_tensor(x)
    scale = _check_width(scale, "scale", allow_zero=False)
    return ops.softplus(x * scale) / scale


def smooth_swish(x, scale=1.0):
    """Swish/SiLU with a smoothness scale: `x * sigmoid(scale * x)`.

    Args:
        x: Input tensor.
        scale: Positive scale; larger is closer to ReLU (`scale=1` is SiLU).

    Returns:
        A tensor of the same shape and dtype as `x`.

    Example:

    >>> keras_smelu.activations.smooth_swish(keras.ops.ones((2,)), scale=2.0)  # doctest: +SKIP
    """
    x = _as_float_tensor(x)
    scale = _check_width(scale, "scale", allow_zero=False)
    return x * ops.sigmoid(x * scale)


def smooth_gelu(x, scale=1.0):
    """Exact GELU with a smoothness scale: `x * Phi(scale * x)`, `Phi` the normal CDF.

    Args:
        x: Input tensor.
        scale: Positive scale; larger is closer to ReLU (`scale=1` is GELU).

    Returns:
        A tensor of the same shape and dtype as `x`.

    Example:

    >>> keras_smelu.activations.smooth_gelu(keras.ops.ones((2,)), scale=2.0)  # doctest: +SKIP
    """
    x = _as_float_tensor(x)
    scale = _check_width(scale, "scale", allow_zero=False)
    return ops.gelu(x * scale, approximate=False) / scale
