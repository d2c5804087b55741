"""SmeLU, generalized SmeLU and smooth comparator activations.

Flat functions over `keras.ops`, like `keras.activations`: they run on every Keras backend.
SmeLU and g-SmeLU carry their own gradient rule (`_gradients.py`), so the backward pass keeps a
single tensor, as ReLU's does, and is exact at the joints where autodiff of `clip` is not.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Literal

import numpy as np
from keras import backend, ops

from keras_smelu import _gradients

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

DEFAULT_BETA = 0.5
"""Default SmeLU half-width.

Pre-activations of a He-initialised or normalised layer have a standard deviation near 1; a
half-width of 0.5 smooths the band of about +-0.5 standard deviations (~40% of units at
initialisation) and leaves the rest exactly as ReLU would. Without normalisation trained
pre-activations are often much smaller (standard deviations of 0.05-0.3, docs/findings.md),
where a narrower width is better: the tuner (`keras_smelu.tuning`) maps that trade-off.
"""


def _scalar(value: object) -> object:
    """A 0-d NumPy array, NumPy scalar or concrete 0-d tensor as a Python number; anything
    else unchanged (for the checks below to accept or reject)."""
    if isinstance(value, (bool, numbers.Number, str)) or value is None:
        return value
    if tuple(getattr(value, "shape", (None,))) == ():
        known = _concrete(value)
        if known is not None and known.dtype.kind in "iuf":
            return known.item()
    return value


def check_width(value: object, name: str, *, allow_zero: bool = True) -> float:
    """Validates a width given as a number (or a 0-d array) and returns it as a float."""
    value = _scalar(value)
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


def check_band(alpha: object, beta: object, *, allow_zero: bool = True) -> tuple[float, float]:
    """Validates g-SmeLU's half-widths: each a width, their sum (the band) positive."""
    alpha = check_width(alpha, "alpha", allow_zero=allow_zero)
    beta = check_width(beta, "beta", allow_zero=allow_zero)
    if alpha + beta <= 0:
        raise ValueError(
            "Arguments `alpha` and `beta` must not both be 0: the quadratic band needs a "
            f"positive width alpha + beta. Received: alpha={alpha}, beta={beta}"
        )
    return alpha, beta


def check_slope(value: object, name: str) -> float:
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Argument `{name}` must be a real number. Received: {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"Argument `{name}` must be finite. Received: {name}={value}")
    return value


def _is_constant(value: object) -> bool:
    """True for an argument given as a plain value (validated, then fixed in the computation)
    rather than a tensor: numbers, strings, None, NumPy scalars and 0-d NumPy arrays."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    return value is None or isinstance(value, (numbers.Number, str, np.generic))


def _concrete(value: object) -> np.ndarray | None:
    """The value of a tensor as a NumPy array where it is known now (eager execution), else
    None (a tracer under `jax.jit`, a symbolic tensor in a `tf.function` or a functional
    model)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    try:
        return np.asarray(ops.convert_to_numpy(value))
    except Exception:  # unknown until the graph runs
        return None


def _check_fits_dtype(name: str, value: float, x: ArrayLike) -> None:
    """A width must be representable in `x`'s dtype: a wider band cannot be computed there."""
    dtype = backend.standardize_dtype(x.dtype)
    _, largest = _gradients.dtype_range(dtype)
    if value > largest:
        raise ValueError(
            f"Argument `{name}` must be at most {largest:g}, the largest {dtype} number, to be "
            f"computed with an input of that dtype; cast the input to a wider float dtype. "
            f"Received: {name}={value}"
        )


def _underflows(width: float, x: ArrayLike) -> bool:
    """A width below the dtype's smallest normal number: the band vanishes (see `smelu`)."""
    return width < _gradients.dtype_range(x.dtype)[0]


def _check_tensor(value: ArrayLike, name: str, x: ArrayLike, *, width: bool) -> None:
    """Checks a tensor parameter's values where they are known now (eager), with the same
    messages as for numbers; in a traced graph see `smelu` for what invalid values give."""
    known = _concrete(value)
    if known is None or known.dtype.kind not in "iuf":
        return
    known = known.astype(np.float64)
    bad = ~np.isfinite(known) | (known < 0) if width else ~np.isfinite(known)
    if bad.any():
        expected = "finite numbers >= 0" if width else "finite numbers"
        raise ValueError(
            f"Argument `{name}` must hold {expected}. Received: {name} with "
            f"{int(bad.sum())} invalid value(s) out of {known.size}, e.g. {known[bad].flat[0]}"
        )
    if width and known.size:
        _check_fits_dtype(name, float(known.max()), x)


def _as_float_tensor(x: ArrayLike) -> ArrayLike:
    """Converts like Keras's float ops do: integer and boolean inputs become floatx."""
    x = ops.convert_to_tensor(x)
    if "float" not in backend.standardize_dtype(x.dtype):
        x = ops.cast(x, backend.floatx())
    return x


def smelu(x: ArrayLike, beta: float | ArrayLike = DEFAULT_BETA) -> ArrayLike:
    """Smooth reLU (SmeLU) activation function.

    Zero on the left, the identity on the right and a quadratic in between, with a continuous
    gradient:

    `smelu(x) = 0` if `x <= -beta`,
    `(x + beta)**2 / (4 * beta)` if `-beta < x < beta`,
    `x` if `x >= beta`.

    It equals ReLU convolved with a box of width `2 * beta`, and
    `beta * keras.ops.sparse_plus(x / beta)`; `beta=0` is exactly ReLU. Its gradient
    `clip((x + beta) / (2 * beta), 0, 1)` is computed from one saved tensor. The computation
    never squares a number larger than the result, so it is finite wherever the true value is,
    in every float dtype (float16 and mixed precision included).

    Widths at the edges of the input's dtype:

    - a width below the dtype's smallest normal number (about 6.1e-5 in float16, 1.2e-38 in
      float32, including subnormal widths) is exactly ReLU: the band is narrower than the
      dtype resolves, and the result is within `beta / 4` of ReLU's;
    - a width above the dtype's largest finite number is refused with a `ValueError`.

    Tensor widths (a learnable width, a per-unit width) are checked like numbers where their
    values are known (eager execution): a negative, NaN or infinite value raises the same
    `ValueError`. Inside a traced graph (`jax.jit`, `tf.function`), where values are unknown,
    a width of 0 (or one below the smallest normal number) gives exactly ReLU and a negative,
    NaN or infinite width gives NaN outputs, so that an invalid width is never mistaken for a
    result.

    Args:
        x: Input tensor. Integer inputs are cast to floatx; float dtypes are kept.
        beta: Half-width of the quadratic band: a non-negative number (or 0-d NumPy array),
            or a tensor broadcastable to `x` (e.g. a learnable or per-unit width; its gradient
            comes back in its own dtype). Defaults to `DEFAULT_BETA` (0.5).

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
    if _is_constant(beta):
        beta = check_width(beta, "beta")
        _check_fits_dtype("beta", beta, x)
        if _underflows(beta, x):
            return ops.relu(x)
        return _gradients.smelu_fixed(x, beta)
    _check_tensor(beta, "beta", x, width=True)
    return _gradients.smelu_tensor(x, beta)


def _two_lines(x: ArrayLike, slope_left: float, slope_right: float) -> ArrayLike:
    """g-SmeLU's limit for a band narrower than the dtype resolves: the lines meeting at 0."""
    return ops.where(
        x < 0, _gradients.scaled_line(x, slope_left), _gradients.scaled_line(x, slope_right)
    )


def generalized_smelu(
    x: ArrayLike,
    alpha: float | ArrayLike = DEFAULT_BETA,
    beta: float | ArrayLike = DEFAULT_BETA,
    slope_left: float | ArrayLike = 0.0,
    slope_right: float | ArrayLike = 1.0,
) -> ArrayLike:
    """Generalized SmeLU (g-SmeLU) activation function.

    Two lines joined by a quadratic whose gradient ramps linearly from `slope_left` at
    `x = -alpha` to `slope_right` at `x = beta`. With `u = x + alpha` and `w = alpha + beta`:

    `y = slope_left * x` if `x <= -alpha`,
    `y = slope_left * x + (slope_right - slope_left) * u**2 / (2 * w)` in between,
    `y = y(beta) + slope_right * (x - beta)` if `x >= beta`.

    `generalized_smelu(x, b, b, 0, 1) == smelu(x, b)`. Widths follow `smelu`'s rules: each
    width below the dtype's smallest normal number counts as 0 (both 0: the two lines meeting
    at 0), one above its largest finite number is refused, and tensor parameters are checked
    where their values are known; in a traced graph a negative, NaN or infinite width gives
    NaN outputs, and `alpha = beta = 0` the two lines.

    Args:
        x: Input tensor.
        alpha: Left half-width, `>= 0` (a number, or a tensor broadcastable to `x`).
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
    if all(_is_constant(p) for p in params):
        alpha, beta = check_band(alpha, beta)
        slope_left = check_slope(slope_left, "slope_left")
        slope_right = check_slope(slope_right, "slope_right")
        for name, value in (("alpha", alpha), ("beta", beta)):
            _check_fits_dtype(name, value, x)
        alpha = 0.0 if _underflows(alpha, x) else alpha
        beta = 0.0 if _underflows(beta, x) else beta
        if _underflows(alpha + beta, x):
            return _two_lines(x, slope_left, slope_right)
        return _gradients.generalized_smelu_fixed(x, alpha, beta, slope_left, slope_right)
    names = ("alpha", "beta", "slope_left", "slope_right")
    for name, value in zip(names, params, strict=True):
        if _is_constant(value):
            check = check_width if name in ("alpha", "beta") else check_slope
            check(value, name)
        else:
            _check_tensor(value, name, x, width=name in ("alpha", "beta"))
    _check_known_band(alpha, beta)
    return _gradients.generalized_smelu_tensor(x, *(_number_or_tensor(p) for p in params))


def _number_or_tensor(value: float | ArrayLike) -> float | ArrayLike:
    return float(_scalar(value)) if _is_constant(value) else value


def _check_known_band(alpha: float | ArrayLike, beta: float | ArrayLike) -> None:
    """Where both widths are known now, their sum must be positive everywhere (as numbers)."""
    known = [_concrete(v) for v in (alpha, beta)]
    if any(k is None for k in known):
        return
    total = np.asarray(known[0], np.float64) + np.asarray(known[1], np.float64)
    if (total <= 0).any():
        raise ValueError(
            "Arguments `alpha` and `beta` must not both be 0: the quadratic band needs a "
            f"positive width alpha + beta. Received: alpha + beta with minimum {total.min()}"
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


def scale_to_beta(family: Literal["gelu", "swish", "softplus"], scale: float) -> float:
    """Maps a comparator's scale `s` to the SmeLU width with the same curvature at 0.

    SmeLU's curvature in its band is `1 / (2 beta)`; `softplus(s x)/s` has `s/4` at 0,
    `x sigmoid(s x)` has `s/2` and `x Phi(s x)` has `s sqrt(2/pi)`. Equal curvature gives
    `beta = 1 / (2 k s)` with `k` the family's curvature per unit scale.

    Args:
        family: One of "softplus", "swish", "gelu".
        scale: The positive scale `s`.

    Returns:
        The equivalent SmeLU half-width.

    Example:

    >>> keras_smelu.activations.scale_to_beta("softplus", 4.0)
    0.5
    """
    return _equal_curvature(family, scale, "scale")


def beta_to_scale(family: Literal["gelu", "swish", "softplus"], beta: float) -> float:
    """Inverse of `scale_to_beta`: the comparator scale with SmeLU(beta)'s curvature at 0.

    `scale = 1 / (2 k beta)`, with `k` the family's curvature per unit scale (see
    `scale_to_beta`).

    Args:
        family: One of "softplus", "swish", "gelu".
        beta: The positive SmeLU half-width.

    Returns:
        The comparator scale `s` with the same curvature at 0.

    Example:

    >>> keras_smelu.activations.beta_to_scale("softplus", 0.5)
    4.0
    """
    return _equal_curvature(family, beta, "beta")


def _equal_curvature(family: str, value: float, name: str) -> float:
    """`1 / (2 k value)`: scale to width and width to scale alike (the map is its own inverse)."""
    check_comparator(family)
    value = check_width(value, name, allow_zero=False)
    return 1.0 / (2.0 * _CURVATURE_PER_SCALE[family] * value)


def check_comparator(family: str) -> str:
    """Returns `family` if it names a comparator family, else raises a ValueError."""
    if family not in _CURVATURE_PER_SCALE:
        raise ValueError(
            f"Argument `family` must be one of {sorted(COMPARATORS)}. Received: family={family!r}"
        )
    return family


def smooth_softplus(x: ArrayLike, scale: float = 1.0) -> ArrayLike:
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
    scale = check_width(scale, "scale", allow_zero=False)
    return ops.softplus(x * scale) / scale


def smooth_swish(x: ArrayLike, scale: float = 1.0) -> ArrayLike:
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
    scale = check_width(scale, "scale", allow_zero=False)
    return x * ops.sigmoid(x * scale)


def smooth_gelu(x: ArrayLike, scale: float = 1.0) -> ArrayLike:
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
    scale = check_width(scale, "scale", allow_zero=False)
    return ops.gelu(x * scale, approximate=False) / scale
