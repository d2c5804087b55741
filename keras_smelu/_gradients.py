"""Forward passes and gradient rules of SmeLU and g-SmeLU, overflow-safe in every float dtype.

Autodiff of a `clip`-based SmeLU is wrong exactly at the joints (JAX splits ties: 0.5 instead
of 1 at `x = beta`) and keeps several intermediates alive. These rules save one tensor and
derive every gradient from it.

Overflow: the textbook `(x + beta)**2 / (4 beta)` squares a number up to `2 beta`, which
overflows float16 from `beta = 128` (float32 from about 1e19) although the result, at most
`beta`, is finite. Every form here keeps each intermediate within the result's magnitude:

- fixed widths with a normal `1 / (4 beta)`: `c = relu(x + beta)`, `y = c * (c / (4 beta))`
  (`c / (4 beta) <= 1/2` in the band), `dy/dx = min(c / (2 beta), 1)`;
- otherwise (tensor widths, and fixed widths whose reciprocal is subnormal in the dtype):
  halves first, `c = relu(x / 2 + beta / 2)`, `r = min(c / beta, 1)`, `y = c * r`,
  `dy/dx = r`, `dy/dbeta = r (1 - r)` (`(beta^2 - x^2) / (4 beta^2)` inside the band). The
  division scales a huge `beta` down first: XLA on a CPU divides through the reciprocal,
  which is flushed to 0 once it is subnormal.

g-SmeLU is the same with `c = relu(x / 2 + alpha / 2)`, `h = (alpha + beta) / 2`,
`r = min(c / h, 1)` and the ramp's share of `y`, `q = c * r` (`u^2 / (2 w)`), `d = g_r - g_l`:
`y = g_l x + d q`, `dy/dx = g_l + d r`, `dy/dalpha = d r (1 - r / 2)`, `dy/dbeta = -d r^2 / 2`,
`dy/dg_r = q`, `dy/dg_l = x - q`.

The right branch is selected with `where(x < beta, band, right)` (fixed widths) or
`where(x >= beta, right, band)` (tensor widths, so that a NaN width gives NaN), so that
`y == x` exactly for `x >= beta` in SmeLU, +-inf map to +-inf/0 without NaN, and NaN stays NaN.

Tensor widths are taken as they come in a traced graph, where their values are unknown:
`effective_width` maps a width below the dtype's smallest normal number (0, or one that
underflows) to exactly 0, the ReLU (two-line) limit, and a negative width to NaN, so an invalid
width shows in the output rather than passing for a plausible number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from keras import backend, ops

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

# (smallest normal, largest finite) of each float dtype. CPUs run XLA and TensorFlow with
# subnormals flushed to zero, so nothing below the smallest normal may reach a division.
DTYPE_RANGE = {
    "float16": (2.0**-14, 65504.0),
    "bfloat16": (2.0**-126, 3.3895313892515355e38),
    "float32": (2.0**-126, 3.4028234663852886e38),
    "float64": (2.0**-1022, 1.7976931348623157e308),
}


# About the square root of each dtype's largest number. XLA on a CPU divides through the
# reciprocal, which flushes to 0 above 1 / (smallest normal): divisors larger than this are
# scaled down by it first, exactly (a power of two).
_DIVISOR_SCALE = {"float16": 2.0**7, "bfloat16": 2.0**63, "float32": 2.0**63, "float64": 2.0**511}


def dtype_range(dtype: DTypeLike) -> tuple[float, float]:
    """`(smallest normal, largest finite)` of a float dtype."""
    return DTYPE_RANGE[backend.standardize_dtype(dtype)]


def _ratio(numerator: ArrayLike, denominator: ArrayLike, dtype: DTypeLike) -> ArrayLike:
    """`numerator / denominator` for a positive tensor `denominator` up to the dtype's
    largest number, whose reciprocal may be subnormal: both are scaled down first where
    it is large (`denominator` is small: a width per layer or unit)."""
    scale = _DIVISOR_SCALE[backend.standardize_dtype(dtype)]
    down = ops.where(
        denominator > scale,
        ops.full_like(denominator, 1.0 / scale),
        ops.ones_like(denominator),
    )
    return (numerator * down) / (denominator * down)


def _upstream(args: tuple[Any, ...], upstream: ArrayLike | None) -> ArrayLike:
    # TensorFlow and JAX pass the upstream gradient positionally, torch as a keyword.
    return args[0] if upstream is None else upstream


def _sum_to_shape(grad: ArrayLike, shape: Sequence[int], dtype: DTypeLike) -> ArrayLike:
    """Sums a broadcast gradient back to a parameter's (static) shape, in the parameter's
    dtype: a float16 sum over a batch overflows long before a float32 one."""
    grad = ops.cast(grad, dtype)
    shape = tuple(shape)
    lead = len(grad.shape) - len(shape)
    axes = list(range(lead))
    axes += [lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1]
    if axes:
        grad = ops.sum(grad, axis=axes, keepdims=True)
    return ops.reshape(grad, shape)


def _fast_form_fits(width: float, dtype: DTypeLike) -> bool:
    """True if `x + alpha` cannot overflow inside a band of `width` and `1 / (2 width)` is a
    normal number of `dtype` (so multiplying by it loses nothing)."""
    tiny, big = dtype_range(dtype)
    return width <= big and 1.0 / (2.0 * width) >= tiny


def smelu_fixed(x: ArrayLike, beta: float) -> ArrayLike:
    """SmeLU with a constant half-width: a Python float, normal and finite in `x`'s dtype."""
    if not _fast_form_fits(2.0 * beta, x.dtype):
        return generalized_smelu_fixed(x, beta, beta, 0.0, 1.0)
    inv_2beta = 1.0 / (2.0 * beta)
    inv_4beta = 1.0 / (4.0 * beta)

    @ops.custom_gradient
    def _smelu(x):
        c = ops.relu(x + beta)
        y = ops.where(x < beta, c * (c * inv_4beta), x)

        def grad(*args, upstream=None):
            return _upstream(args, upstream) * ops.minimum(c * inv_2beta, 1.0)

        return y, grad

    return _smelu(x)


def effective_width(width: ArrayLike, dtype: DTypeLike) -> ArrayLike:
    """A tensor width in `dtype` as the function uses it: below the smallest normal number
    (zero, underflow) exactly 0, negative NaN, anything else (NaN, inf) unchanged."""
    width = ops.cast(width, dtype)
    tiny, _ = dtype_range(dtype)
    flushed = ops.where(width < 0, ops.full_like(width, float("nan")), ops.zeros_like(width))
    return ops.where(width < tiny, flushed, width)


def _as_param(value: float | ArrayLike, x: ArrayLike) -> ArrayLike:
    """A float tensor parameter (integer and boolean tensors become `x`'s dtype), read out of
    a variable: TensorFlow's custom gradients take tensors, not variables."""
    value = ops.convert_to_tensor(value)
    dtype = value.dtype if "float" in backend.standardize_dtype(value.dtype) else x.dtype
    return ops.cast(value, dtype)


def smelu_tensor(x: ArrayLike, beta: ArrayLike) -> ArrayLike:
    """SmeLU with a tensor half-width broadcastable to `x` (any float dtype; the gradient is
    returned, and summed, in that dtype)."""
    beta = _as_param(beta, x)
    tiny, _ = dtype_range(x.dtype)

    @ops.custom_gradient
    def _smelu(x, beta):
        width = effective_width(beta, x.dtype)
        denominator = ops.maximum(width, tiny)  # 0 (ReLU) divides safely; NaN stays NaN
        c = ops.relu(x * 0.5 + width * 0.5)
        r = ops.minimum(_ratio(c, denominator, x.dtype), 1.0)
        y = ops.where(x >= width, x, c * r)

        def grad(*args, upstream=None):
            upstream = _upstream(args, upstream)
            dbeta = upstream * (r * (1.0 - r))
            return upstream * r, _sum_to_shape(dbeta, beta.shape, beta.dtype)

        return y, grad

    return _smelu(x, beta)


def _is_zero(slope: float | ArrayLike) -> bool:
    return isinstance(slope, float) and slope == 0.0


def scaled_line(x: ArrayLike, slope: float | ArrayLike) -> ArrayLike:
    """`slope * x`, but 0 rather than NaN where the slope is 0 and `x` is infinite."""
    if isinstance(slope, float):
        return ops.zeros_like(x) if slope == 0.0 else slope * x
    line = slope * x
    return ops.where(slope == 0, ops.zeros_like(line), line)


def generalized_smelu_fixed(
    x: ArrayLike, alpha: float, beta: float, slope_left: float, slope_right: float
) -> ArrayLike:
    """g-SmeLU with constant (Python float) parameters; validated by the caller, the widths
    each 0 or normal and finite in `x`'s dtype, their sum positive."""
    w = alpha + beta
    d = slope_right - slope_left
    # y(beta) + g_r (x - beta), the constant folded (halves first: alpha - beta may overflow).
    offset = d * (0.5 * alpha - 0.5 * beta)
    fast = _fast_form_fits(w, x.dtype)
    inv_2w = 1.0 / (2.0 * w)
    half_alpha = 0.5 * alpha
    # The wide form's ramp c / (w / 2), as (c * down) / (w / 2 * down) with a normal reciprocal.
    down = 1.0 / _DIVISOR_SCALE[backend.standardize_dtype(x.dtype)]
    inv_half_w = 1.0 / (0.5 * w * down)

    @ops.custom_gradient
    def _gsmelu(x):
        if fast:
            c = ops.relu(x + alpha)
            ramp = c * inv_2w  # r / 2, at most 1/2 in the band
            share = c * ramp
        else:  # a band too wide for the dtype's reciprocal: halves, and both scaled down
            c = ops.relu(x * 0.5 + half_alpha)
            ramp = ops.minimum((c * down) * inv_half_w, 1.0)
            share = c * ramp
        band = share if d == 1.0 else d * share
        if not _is_zero(slope_left):
            band = band + scaled_line(x, slope_left)
        right = scaled_line(x, slope_right)
        if offset != 0.0:
            right = right + offset
        y = ops.where(x < beta, band, right)

        def grad(*args, upstream=None):
            r = ops.minimum(ramp + ramp, 1.0) if fast else ramp
            slope = r if (slope_left, d) == (0.0, 1.0) else slope_left + d * r
            return _upstream(args, upstream) * slope

        return y, grad

    return _gsmelu(x)


def generalized_smelu_tensor(
    x: ArrayLike,
    alpha: float | ArrayLike,
    beta: float | ArrayLike,
    slope_left: float | ArrayLike,
    slope_right: float | ArrayLike,
) -> ArrayLike:
    """g-SmeLU whose parameters are tensors broadcastable to `x` (learnable); the gradients are
    returned, and summed, in each parameter's dtype."""
    params = tuple(_as_param(p, x) for p in (alpha, beta, slope_left, slope_right))
    tiny, _ = dtype_range(x.dtype)

    @ops.custom_gradient
    def _gsmelu(x, alpha, beta, slope_left, slope_right):
        a = effective_width(alpha, x.dtype)
        b = effective_width(beta, x.dtype)
        g_l = ops.cast(slope_left, x.dtype)
        g_r = ops.cast(slope_right, x.dtype)
        d = g_r - g_l
        half_w = ops.maximum(a * 0.5 + b * 0.5, tiny)  # both 0: the two lines meeting at 0
        c = ops.relu(x * 0.5 + a * 0.5)
        r = ops.minimum(_ratio(c, half_w, x.dtype), 1.0)
        share = c * r
        band = scaled_line(x, g_l) + d * share
        right = scaled_line(x, g_r) + d * (a * 0.5 - b * 0.5)
        y = ops.where(x >= b, right, band)

        def grad(*args, upstream=None):
            upstream = _upstream(args, upstream)
            # The ramp's share of y (y without the left line): x - beta + w / 2 on the right.
            q = ops.where(x >= b, x - b * 0.5 + a * 0.5, share)
            grads = (
                upstream * (d * (r * (1.0 - 0.5 * r))),
                upstream * (-0.5 * d * ops.square(r)),
                upstream * (x - q),
                upstream * q,
            )
            return (upstream * (g_l + d * r),) + tuple(
                _sum_to_shape(g, p.shape, p.dtype)
                for g, p in zip(grads, (alpha, beta, slope_left, slope_right), strict=True)
            )

        return y, grad

    return _gsmelu(x, *params)
