"""Forward passes and gradient rules of SmeLU and g-SmeLU.

Autodiff of a `clip`-based SmeLU is wrong exactly at the joints (JAX splits ties: 0.5 instead
of 1 at `x = beta`) and keeps several intermediates alive. These rules save one tensor,
`c = relu(x + alpha)`, and derive every gradient from it:

- SmeLU: `dy/dx = min(c / (2 beta), 1)`, `dy/dbeta = c' (2 beta - c') / (4 beta^2)` with
  `c' = min(c, 2 beta)` (zero outside the band, `(beta^2 - x^2) / (4 beta^2)` inside).
- g-SmeLU, with `w = alpha + beta`, `d = g_r - g_l`, `r = min(c / w, 1)`:
  `dy/dx = g_l + d r`, `dy/dalpha = d (r - r^2 / 2)`, `dy/dbeta = -d r^2 / 2`,
  `dy/dg_r = q`, `dy/dg_l = x - q`, with `q = (y - g_l x) / d` the ramp's share of `y`.

The right branch is selected with `where(x < beta, band, right)` so that `y == x` exactly for
`x >= beta`, +-inf map to +-inf/0 without NaN, and NaN stays NaN.
"""

from __future__ import annotations

from keras import backend, ops

FLOAT16_MIN_WIDTH = 2.0**-14


def _upstream(args, upstream):
    # TensorFlow and JAX pass the upstream gradient positionally, torch as a keyword.
    return args[0] if upstream is None else upstream


def _sum_to_shape(grad, shape):
    """Sums a broadcast gradient back to a parameter's (static) shape."""
    shape = tuple(shape)
    lead = len(grad.shape) - len(shape)
    axes = list(range(lead))
    axes += [lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1]
    if axes:
        grad = ops.sum(grad, axis=axes, keepdims=True)
    return ops.reshape(grad, shape)


def smelu_fixed(x, beta: float):
    """SmeLU with a constant half-width `beta > 0` (a Python float)."""
    inv_2beta = 1.0 / (2.0 * beta)
    inv_4beta = 1.0 / (4.0 * beta)

    @ops.custom_gradient
    def _smelu(x):
        c = ops.relu(x + beta)
        y = ops.where(x < beta, ops.square(c) * inv_4beta, x)

        def grad(*args, upstream=None):
            return _upstream(args, upstream) * ops.minimum(c * inv_2beta, 1.0)

        return y, grad

    return _smelu(x)


def _floor_width(width, dtype):
    """Learned widths are positive, but float16 rounds below 2**-14 towards 0 (and 1/width
    to inf): keep them at float16's smallest normal number."""
    if backend.standardize_dtype(dtype) == "float16":
        return ops.maximum(width, FLOAT16_MIN_WIDTH)
    return width


def smelu_tensor(x, beta):
    """SmeLU with a tensor half-width (positive values) broadcastable to `x`."""
    beta = _floor_width(beta, x.dtype)

    @ops.custom_gradient
    def _smelu(x, beta):
        two_beta = beta + beta
        c = ops.relu(x + beta)
        y = ops.where(x < beta, ops.square(c) / (two_beta + two_beta), x)

        def grad(*args, upstream=None):
            upstream = _upstream(args, upstream)
            c_band = ops.minimum(c, two_beta)
            dx = upstream * (c_band / two_beta)
            dbeta = upstream * (c_band * (two_beta - c_band) / ops.square(two_beta))
            return dx, _sum_to_shape(dbeta, beta.shape)

        return y, grad

    return _smelu(x, beta)


def _is_zero(slope) -> bool:
    return isinstance(slope, float) and slope == 0.0


def scaled_line(x, slope):
    """`slope * x`, but 0 rather than NaN where the slope is 0 and `x` is infinite."""
    if isinstance(slope, float):
        return ops.zeros_like(x) if slope == 0.0 else slope * x
    return ops.where(slope == 0, 0.0, slope * x)


def _generalized_forward(x, alpha, beta, slope_left, slope_right):
    w = alpha + beta
    d = slope_right - slope_left
    c = ops.relu(x + alpha)
    band = d * ops.square(c) / (w + w)
    if not _is_zero(slope_left):
        band = band + scaled_line(x, slope_left)
    # y(beta) + g_r (x - beta), with the constant folded: exact identity for SmeLU's case.
    right = scaled_line(x, slope_right) + 0.5 * d * (alpha - beta)
    return ops.where(x < beta, band, right), c


def generalized_smelu_fixed(x, alpha, beta, slope_left, slope_right):
    """g-SmeLU with constant (Python float) parameters; validated by the caller."""
    w = alpha + beta
    d = slope_right - slope_left

    @ops.custom_gradient
    def _gsmelu(x):
        y, c = _generalized_forward(x, alpha, beta, slope_left, slope_right)

        def grad(*args, upstream=None):
            ramp = ops.minimum(c * (1.0 / w), 1.0)
            return _upstream(args, upstream) * (slope_left + d * ramp)

        return y, grad

    return _gsmelu(x)


def generalized_smelu_tensor(x, alpha, beta, slope_left, slope_right):
    """g-SmeLU whose parameters are tensors broadcastable to `x` (learnable)."""
    alpha = _floor_width(alpha, x.dtype)
    beta = _floor_width(beta, x.dtype)

    @ops.custom_gradient
    def _gsmelu(x, alpha, beta, slope_left, slope_right):
        y, c = _generalized_forward(x, alpha, beta, slope_left, slope_right)

        def grad(*args, upstream=None):
            upstream = _upstream(args, upstream)
            w = alpha + beta
            d = slope_right - slope_left
            ramp = ops.minimum(c / w, 1.0)
            half_ramp_sq = 0.5 * ops.square(ramp)
            # The ramp's share of y (y without the left line), recomputed from c.
            q = ops.where(x < beta, ops.square(c) / (w + w), x - beta + 0.5 * w)
            grads = (
                upstream * (slope_left + d * ramp),
                upstream * (d * (ramp - half_ramp_sq)),
                upstream * (-d * half_ramp_sq),
                upstream * (x - q),
                upstream * q,
            )
            params = (alpha, beta, slope_left, slope_right)
            return (grads[0],) + tuple(
                _sum_to_shape(g, p.shape) for g, p in zip(grads[1:], params, strict=True)
            )

        return y, grad

    return _gsmelu(x, alpha, beta, slope_left, slope_right)
