"""SmeLU and g-SmeLU at the edges of each float dtype: wide and tiny widths, tensor widths known
and traced, mixed precision; against float64 NumPy references."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops

import keras_smelu
from keras_smelu import activations
from tests import reference
from tests._backend import grads, numpy

pytestmark = pytest.mark.backend

FLOAT16_TINY = 2.0**-14
FLOAT32_TINY = 2.0**-126


def as_float64(y):
    return numpy(ops.cast(y, "float32")).astype(np.float64)


def rounded(value, dtype):
    """`value` as the dtype holds it, back in float64."""
    return float(as_float64(ops.cast(ops.convert_to_tensor(np.float64(value)), dtype)))


DTYPE_MAX = {"float16": 65504.0, "bfloat16": 3.38e38, "float32": 3.4e38}


def band_points(beta, dtype, n=41):
    """Points across the band and both sides (within the dtype's range), as `dtype` holds
    them (float64 array)."""
    x = np.concatenate([np.linspace(-2.0, 2.0, n) * beta, [-beta, beta, 0.0]])
    x = np.clip(x, -DTYPE_MAX[dtype], DTYPE_MAX[dtype])
    return as_float64(ops.cast(x, dtype))


def smelu_dbeta(x, beta):
    """d smelu / d beta: (beta^2 - x^2) / (4 beta^2) inside the band, 0 outside (float64)."""
    x = np.asarray(x, np.float64)
    inside = np.abs(x) < beta
    return np.where(inside, ((beta - x) / (2 * beta)) * ((beta + x) / (2 * beta)), 0.0)


def traced(fn):
    """`fn` compiled the way the backend traces it: values unknown while it is built."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    pytest.skip(f"no traced mode for {backend}")


# ----------------------------------------------------------------------------------------------
# Wide bands: the true value is finite, so the result must be


@pytest.mark.parametrize("beta", [200.0, 1000.0, 5000.0, 30000.0, 60000.0])
def test_float16_wide_bands_are_finite_and_exact(beta):
    x = band_points(beta, "float16")
    y = activations.smelu(ops.cast(x, "float16"), beta)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    got = as_float64(y)
    want = reference.smelu(x, rounded(beta, "float16"))
    assert np.isfinite(got).all(), got
    np.testing.assert_allclose(got, want, rtol=3e-3, atol=rounded(beta, "float16") * 1e-3)
    (gx,) = grads(lambda t: activations.smelu(t, beta), ops.cast(x, "float16"))
    assert np.isfinite(gx.astype(np.float64)).all()
    np.testing.assert_allclose(
        gx.astype(np.float64), reference.smelu_grad(x, rounded(beta, "float16")), atol=2e-3
    )


@pytest.mark.parametrize("beta", [300.0, 30000.0])
def test_float16_wide_tensor_width_gradients(beta):
    x = band_points(beta, "float16")
    width = rounded(beta, "float16")
    gx, gbeta = grads(
        lambda t, b: activations.smelu(t, b), ops.cast(x, "float16"), np.float32(beta)
    )
    assert np.isfinite(gx.astype(np.float64)).all() and np.isfinite(gbeta)
    np.testing.assert_allclose(gx.astype(np.float64), reference.smelu_grad(x, width), atol=2e-3)
    np.testing.assert_allclose(gbeta, smelu_dbeta(x, width).sum(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("beta", [1e19, 1e30, 1e37, 3e38])
def test_float32_range_wide_bands_are_finite_and_exact(dtype, beta):
    x = band_points(beta, dtype)
    got = as_float64(activations.smelu(ops.cast(x, dtype), beta))
    width = rounded(beta, dtype)
    rtol = 2e-6 if dtype == "float32" else 2e-2
    assert np.isfinite(got).all(), got
    np.testing.assert_allclose(got, reference.smelu(x, width), rtol=rtol, atol=width * rtol)


@pytest.mark.parametrize("beta", [1e30, 3e38])
def test_wide_band_gradients_including_the_width(beta):
    x = band_points(beta, "float32")
    width = rounded(beta, "float32")
    gx, gbeta = grads(
        lambda t, b: activations.smelu(t, b),
        x.astype("float32"),
        np.float32(beta),
    )
    np.testing.assert_allclose(gx, reference.smelu_grad(x, width), atol=1e-6)
    assert np.isfinite(gbeta) and gbeta.dtype == np.float32
    np.testing.assert_allclose(gbeta, smelu_dbeta(x, width).sum(), rtol=1e-5)


def test_wide_band_equals_scaled_sparse_plus():
    # smelu(x, b) == b * sparse_plus(x / b), at widths where c * c would overflow float32.
    for beta in (1e20, 1e30, 1e36):
        x = np.linspace(-3.0, 3.0, 61).astype("float32") * np.float32(beta)
        got = numpy(activations.smelu(x, beta)).astype(np.float64)
        want = numpy(ops.sparse_plus(x / np.float32(beta))).astype(np.float64) * beta
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=beta * 1e-6)


@pytest.mark.parametrize(
    "dtype,alpha,beta", [("float16", 300.0, 200.0), ("float16", 40000.0, 20000.0)]
)
def test_generalized_wide_bands_are_finite_and_exact(dtype, alpha, beta):
    gl, gr = 0.1, 1.2
    x = np.concatenate([np.linspace(-1.5 * alpha, 1.5 * beta, 41), [-alpha, 0.0, beta]])
    x = as_float64(ops.cast(x, dtype))
    a, b = rounded(alpha, dtype), rounded(beta, dtype)
    want = reference.generalized_smelu(x, a, b, gl, gr)
    for y in (
        activations.generalized_smelu(ops.cast(x, dtype), alpha, beta, gl, gr),
        keras_smelu.GeneralizedSmeLU(alpha, beta, gl, gr, learnable=True, dtype=dtype)(
            ops.cast(x, dtype)
        ),
    ):
        got = as_float64(y)
        assert np.isfinite(got).all(), got
        np.testing.assert_allclose(got, want, rtol=4e-3, atol=max(a, b) * 2e-3)


def test_generalized_wide_band_parameter_gradients_are_finite():
    alpha, beta, gl, gr = 1e30, 3e30, 0.1, 1.2
    x = np.array([-2e30, -5e29, 0.0, 1e30, 5e30], "float32")
    params = [np.float32(v) for v in (alpha, beta, gl, gr)]
    got = grads(lambda t, *p: activations.generalized_smelu(t, *p), x, *params)
    assert all(np.isfinite(g).all() for g in got), got
    w = rounded(alpha, "float32") + rounded(beta, "float32")
    r = np.clip((x.astype(np.float64) + rounded(alpha, "float32")) / w, 0.0, 1.0)
    np.testing.assert_allclose(got[0], gl + (gr - gl) * r, rtol=1e-5)
    np.testing.assert_allclose(got[1], ((gr - gl) * (r - r**2 / 2)).sum(), rtol=1e-5)
    np.testing.assert_allclose(got[2], (-(gr - gl) * r**2 / 2).sum(), rtol=1e-5)


def test_width_beyond_the_dtype_is_refused():
    x16 = ops.cast(np.ones(3), "float16")
    with pytest.raises(ValueError, match=r"`beta` must be at most 65504.*float16"):
        activations.smelu(x16, 1e5)
    with pytest.raises(ValueError, match="`alpha` must be at most"):
        activations.generalized_smelu(x16, alpha=7e4, beta=1.0)
    with pytest.raises(ValueError, match="`beta` must be at most"):
        activations.smelu(np.ones(3, "float32"), 1e39)
    with pytest.raises(ValueError, match="`beta` must be at most"):
        activations.smelu(x16, ops.convert_to_tensor(np.float32(1e5)))


# ----------------------------------------------------------------------------------------------
# Tiny widths: below the smallest normal number, exactly ReLU; above it, finite


@pytest.mark.parametrize(
    "dtype,beta",
    [
        ("float16", 1e-5),
        ("float16", 6e-8),
        ("float32", 1e-39),
        ("float32", 1e-45),
        ("bfloat16", 1e-40),
    ],
)
def test_widths_below_the_smallest_normal_are_relu(dtype, beta):
    x = ops.cast(np.array([-np.inf, -1.0, -1e-3, 0.0, 1e-3, 1.0, np.inf]), dtype)
    relu = as_float64(ops.relu(x))
    np.testing.assert_array_equal(as_float64(activations.smelu(x, beta)), relu)
    tensor_width = ops.convert_to_tensor(np.float32(beta))
    np.testing.assert_array_equal(as_float64(activations.smelu(x, tensor_width)), relu)
    lines = as_float64(activations.generalized_smelu(x, beta, beta, 0.1, 1.0))
    want = np.where(as_float64(x) < 0, 0.1, 1.0) * as_float64(x)
    np.testing.assert_allclose(lines, want, rtol=2**-8)  # 0.1 * x rounded to the dtype


@pytest.mark.parametrize("dtype,beta", [("float16", 2 * FLOAT16_TINY), ("float32", 4e-38)])
def test_smallest_normal_widths_are_finite_and_close_to_relu(dtype, beta):
    x = ops.cast(np.array([-1.0, -beta, -beta / 2, 0.0, beta / 2, beta, 1.0, np.inf]), dtype)
    relu = as_float64(ops.relu(x))
    for width in (beta, ops.convert_to_tensor(np.float32(beta))):
        got = as_float64(activations.smelu(x, width))
        assert not np.isnan(got).any(), got
        # Within the width, plus what flushing subnormal intermediates to zero loses.
        tiny = FLOAT16_TINY if dtype == "float16" else FLOAT32_TINY
        np.testing.assert_allclose(got, relu, atol=beta / 4 + 2 * tiny)
        (gx,) = grads(lambda t, w=width: activations.smelu(t, w), x)
        gx = gx.astype(np.float64)
        assert np.isfinite(gx).all() and gx[0] == 0.0 and gx[-2] == 1.0, gx


def test_tiny_learnable_width_gradient_is_finite():
    x = np.array([-1.0, -1e-39, 0.0, 1e-39, 1.0], "float32")
    gx, gbeta = grads(lambda t, b: activations.smelu(t, b), x, np.float32(1e-39))
    assert np.isfinite(gx).all() and np.isfinite(gbeta)
    np.testing.assert_array_equal(gx[[0, -1]], [0.0, 1.0])


# ----------------------------------------------------------------------------------------------
# Tensor widths: checked where known, defined where traced


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_known_tensor_widths_are_checked_like_numbers(bad):
    x = np.ones(3, "float32")
    for width in (ops.convert_to_tensor(np.float32(bad)), keras.Variable(bad)):
        with pytest.raises(ValueError, match="Argument `beta` must hold finite numbers >= 0"):
            activations.smelu(x, width)
        with pytest.raises(ValueError, match="Argument `alpha` must hold"):
            activations.generalized_smelu(x, alpha=width)
    per_unit = ops.convert_to_tensor(np.array([0.5, bad, 1.0], "float32"))
    with pytest.raises(ValueError, match="1 invalid value"):
        activations.smelu(x, per_unit)
    with pytest.raises(ValueError, match="`slope_left` must hold finite numbers"):
        activations.generalized_smelu(x, slope_left=ops.convert_to_tensor(np.float32(np.nan)))


def test_known_tensor_band_must_be_positive():
    zero = ops.convert_to_tensor(np.float32(0.0))
    with pytest.raises(ValueError, match="alpha \\+ beta"):
        activations.generalized_smelu(np.ones(3, "float32"), zero, zero)


def test_zero_tensor_width_is_exactly_relu():
    x = np.random.default_rng(0).normal(size=64).astype("float32")
    x[:3] = [0.0, -np.inf, np.inf]
    zero = ops.convert_to_tensor(np.float32(0.0))
    np.testing.assert_array_equal(numpy(activations.smelu(x, zero)), numpy(ops.relu(x)))
    np.testing.assert_array_equal(numpy(traced(activations.smelu)(x, zero)), numpy(ops.relu(x)))


def test_traced_widths():
    x = np.array([-2.0, -0.25, 0.0, 0.25, 2.0, np.inf], "float32")
    fn = traced(activations.smelu)
    good = numpy(fn(x, ops.convert_to_tensor(np.float32(0.5))))
    np.testing.assert_allclose(good[:-1], reference.smelu(x[:-1], 0.5), rtol=1e-6)
    for width in (0.0, 1e-40):  # ReLU, exactly
        got = numpy(fn(x, ops.convert_to_tensor(np.float32(width))))
        np.testing.assert_array_equal(got, np.maximum(x, 0.0))
    for width in (-0.5, np.nan, np.inf):  # invalid: NaN, never a plausible number
        got = numpy(fn(x, ops.convert_to_tensor(np.float32(width))))
        assert np.isnan(got[:-1]).all(), (width, got)


def test_traced_generalized_widths():
    x = np.array([-2.0, -0.25, 0.0, 0.25, 2.0], "float32")
    fn = traced(activations.generalized_smelu)

    def call(alpha, beta):
        params = [np.float32(v) for v in (alpha, beta, 0.1, 1.2)]
        return numpy(fn(x, *(ops.convert_to_tensor(p) for p in params)))

    np.testing.assert_allclose(
        call(0.5, 1.0), reference.generalized_smelu(x, 0.5, 1.0, 0.1, 1.2), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(call(0.0, 0.0), np.where(x < 0, 0.1, 1.2) * x, rtol=1e-6)
    assert np.isnan(call(-0.5, 1.0)).all()
    assert np.isnan(call(0.5, np.nan)).all()


def test_traced_gradient_of_a_zero_width_is_finite():
    x = np.array([-1.0, 0.0, 1.0], "float32")
    gx, gbeta = grads(lambda t, b: activations.smelu(t, b), x, np.float32(0.0))
    np.testing.assert_array_equal(gx, [0.0, 0.0, 1.0])
    assert np.isfinite(gbeta)


# ----------------------------------------------------------------------------------------------
# Mixed precision and 0-d widths in layers


def test_mixed_precision_wide_learnable_width_trains():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = keras_smelu.SmeLU(beta=300.0, learnable=True)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), layer])
        x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32") * 100
        y = numpy(model(x))
        assert y.dtype == np.float16 and np.isfinite(y.astype(np.float32)).all()
        assert layer.trainable_weights[0].dtype == "float32"
        model.compile(optimizer=keras.optimizers.SGD(1e-6), loss="mse")
        history = model.fit(x, np.ones_like(x), epochs=1, batch_size=32, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        assert np.isfinite(numpy(layer.trainable_weights[0]))
        assert float(numpy(layer.parameter_values()["beta"])) != 300.0  # it learned
    finally:
        keras.config.set_dtype_policy(policy)


def test_float16_width_gradient_is_summed_in_the_width_dtype():
    # Per-example d/dbeta are <= 1/4 each; their sum over a big batch exceeds float16's range.
    x = np.random.default_rng(0).uniform(-0.5, 0.5, size=(4096, 96))
    x16 = ops.cast(x, "float16")
    _, gbeta = grads(lambda t, b: activations.smelu(t, b), x16, np.float32(1.0))
    want = smelu_dbeta(as_float64(x16), 1.0).sum()
    assert want > 65504
    assert gbeta.dtype == np.float32
    np.testing.assert_allclose(gbeta, want, rtol=1e-3)


@pytest.mark.parametrize(
    "width",
    [np.array(0.25), np.float32(0.25), np.array(0.25, "float16")],
    ids=["0-d array", "numpy scalar", "0-d float16"],
)
def test_layers_accept_zero_d_widths_and_store_floats(width):
    x = np.linspace(-1, 1, 9).astype("float32")
    want = numpy(activations.smelu(x, width))
    np.testing.assert_allclose(want, reference.smelu(x, 0.25), rtol=1e-6, atol=1e-7)
    for layer in (
        keras_smelu.SmeLU(beta=width),
        keras_smelu.SmeLU(beta=width, learnable=True),
        keras_smelu.GeneralizedSmeLU(alpha=width, beta=width, slope_left=np.array(0.0)),
    ):
        config = layer.get_config()
        json.dumps(config)
        assert type(config["beta"]) is float and config["beta"] == 0.25
        np.testing.assert_allclose(numpy(layer(x)), want, rtol=1e-5, atol=1e-7)


def test_layers_accept_concrete_zero_d_tensors():
    layer = keras_smelu.SmeLU(beta=ops.convert_to_tensor(0.5))
    assert layer.get_config()["beta"] == 0.5
    json.dumps(layer.get_config())


def test_layers_refuse_non_scalar_widths():
    with pytest.raises(ValueError, match="Argument `beta` must be a non-negative real number"):
        keras_smelu.SmeLU(beta=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="Argument `beta` must be a finite number >= 0"):
        keras_smelu.SmeLU(beta=np.array(-1.0))
