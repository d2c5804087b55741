"""SmeLU, g-SmeLU and the smooth comparators against their formulas."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_smelu
from keras_smelu import activations
from tests import reference
from tests._backend import numpy

pytestmark = pytest.mark.backend

JOINTS_AND_MORE = np.array(
    [-1e6, -3.0, -0.5, -0.4999, -0.25, -1e-7, 0.0, 1e-7, 0.25, 0.4999, 0.5, 0.5001, 3.0, 1e6]
)


@pytest.mark.parametrize("beta", [0.5, 0.1, 1.0, 2.0, 1e-3])
def test_smelu_matches_formula_everywhere(beta):
    x = np.concatenate([JOINTS_AND_MORE * beta / 0.5, np.linspace(-3, 3, 601) * beta])
    x = x.astype("float32")  # JAX computes in float32 unless x64 is enabled
    got = numpy(activations.smelu(x, beta=beta))
    # atol: near -beta, x + beta cancels in float32 (beta itself is rounded to float32).
    np.testing.assert_allclose(got, reference.smelu(x, beta), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("beta", [0.25, 1.0, 3.0])
def test_smelu_equals_scaled_sparse_plus(beta):
    # keras.ops.sparse_plus is SmeLU with width 1: smelu(x, b) == b * sparse_plus(x / b).
    x = np.linspace(-4 * beta, 4 * beta, 257).astype("float32")
    got = numpy(activations.smelu(x, beta))
    want = numpy(ops.sparse_plus(x / beta)) * beta
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_smelu_joints_are_exact():
    beta = 0.5
    x = np.array([-beta, beta], "float32")
    np.testing.assert_array_equal(numpy(activations.smelu(x, beta)), [0.0, beta])
    big = np.array([0.50001, 7.3, 1e30], "float32")
    np.testing.assert_array_equal(numpy(activations.smelu(big, beta)), big)  # identity on right


def test_beta_zero_is_exactly_relu():
    x = np.random.default_rng(0).normal(size=100).astype("float32")
    np.testing.assert_array_equal(numpy(activations.smelu(x, 0.0)), numpy(ops.relu(x)))
    np.testing.assert_array_equal(numpy(activations.smelu(x, 0)), np.maximum(x, 0))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_infinities_nan_and_dtype(dtype):
    if dtype == "float64" and keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            pytest.skip("JAX truncates float64 to float32 unless jax_enable_x64 is set")
    x = ops.cast(np.array([-np.inf, np.inf, np.nan, -1.0, 0.0, 1.0]), dtype)
    y = activations.smelu(x, 0.5)
    assert keras.backend.standardize_dtype(y.dtype) == dtype
    got = numpy(ops.cast(y, "float32"))
    assert got[0] == 0.0 and got[1] == np.inf
    assert np.isnan(got[2])
    np.testing.assert_allclose(got[3:], [0.0, 0.125, 1.0], rtol=1e-2)
    g = numpy(ops.cast(activations.generalized_smelu(x, 0.5, 0.5, 0.0, 1.0), "float32"))
    assert g[0] == 0.0 and g[1] == np.inf and np.isnan(g[2])


def test_integer_input_is_cast_to_floatx():
    y = activations.smelu(ops.convert_to_tensor([-2, 0, 2]), 0.5)
    assert keras.backend.standardize_dtype(y.dtype) == keras.config.floatx()
    np.testing.assert_allclose(numpy(y), [0.0, 0.125, 2.0])


def test_mixed_precision_policy():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = keras.layers.Dense(4, activation="smelu")
        out = layer(np.ones((2, 3), "float32"))
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
        learn = keras_smelu.SmeLU(beta=0.5, learnable=True)
        out = learn(ops.ones((2, 3), "float16") * 0.25)
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
        np.testing.assert_allclose(numpy(ops.cast(out, "float32")), 0.28125, rtol=1e-3)
    finally:
        keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize(
    "alpha,beta,gl,gr", [(0.5, 0.5, 0.0, 1.0), (1.0, 0.25, 0.1, 1.0), (0.3, 2.0, -0.2, 1.5)]
)
def test_generalized_smelu_matches_formula(alpha, beta, gl, gr):
    x = np.concatenate([np.linspace(-4, 4, 401), [-alpha, beta, -1e5, 1e5]]).astype("float32")
    got = numpy(activations.generalized_smelu(x, alpha, beta, gl, gr))
    np.testing.assert_allclose(
        got, reference.generalized_smelu(x, alpha, beta, gl, gr), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_smelu_is_the_special_case_of_generalized_smelu(beta):
    x = np.linspace(-3, 3, 301).astype("float32")
    np.testing.assert_allclose(
        numpy(activations.generalized_smelu(x, beta, beta, 0.0, 1.0)),
        numpy(activations.smelu(x, beta)),
        rtol=1e-6,
        atol=1e-7,
    )


def test_generalized_smelu_is_continuous_at_the_joints():
    alpha, beta, gl, gr = 0.7, 0.3, 0.2, 1.3
    eps = 1e-6
    for joint in (-alpha, beta):
        x = np.array([joint - eps, joint, joint + eps])
        y = numpy(activations.generalized_smelu(x, alpha, beta, gl, gr))
        assert abs(y[0] - y[1]) < 1e-5 and abs(y[2] - y[1]) < 1e-5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"beta": -0.1}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": float("inf")}, "beta"),
        ({"beta": "wide"}, "beta"),
        ({"beta": True}, "beta"),
    ],
)
def test_invalid_width_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        activations.smelu(np.ones(3), **kwargs)


def test_invalid_generalized_parameters_raise():
    with pytest.raises(ValueError, match="alpha"):
        activations.generalized_smelu(np.ones(3), alpha=-1.0)
    with pytest.raises(ValueError, match="alpha \\+ beta"):
        activations.generalized_smelu(np.ones(3), alpha=0.0, beta=0.0)
    with pytest.raises(ValueError, match="slope_left"):
        activations.generalized_smelu(np.ones(3), slope_left=float("nan"))


@pytest.mark.parametrize(
    "fn,base",
    [
        (activations.smooth_softplus, lambda x: np.log1p(np.exp(x))),
        (activations.smooth_swish, lambda x: x / (1 + np.exp(-x))),
        (activations.smooth_gelu, lambda x: x * 0.5 * (1 + np.vectorize(math.erf)(x / 2**0.5))),
    ],
)
@pytest.mark.parametrize("scale", [0.5, 1.0, 4.0])
def test_comparators_follow_their_scale(fn, base, scale):
    x = np.linspace(-4, 4, 81)
    want = base(scale * x) / scale
    np.testing.assert_allclose(numpy(fn(x, scale=scale)), want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", ["softplus", "swish", "gelu"])
def test_width_mapping_matches_curvature_at_zero(family):
    fn = {
        "softplus": activations.smooth_softplus,
        "swish": activations.smooth_swish,
        "gelu": activations.smooth_gelu,
    }[family]
    beta = 0.8
    scale = activations.beta_to_scale(family, beta)
    assert activations.scale_to_beta(family, scale) == pytest.approx(beta)
    h = 0.05  # float32 rounding dominates a smaller step
    y = numpy(fn(np.array([-h, 0.0, h]), scale=scale)).astype("float64")
    curvature = (y[0] - 2 * y[1] + y[2]) / h**2
    assert curvature == pytest.approx(1 / (2 * beta), rel=2e-3)  # SmeLU's in-band curvature


def test_width_mapping_rejects_unknown_family():
    with pytest.raises(ValueError, match="family"):
        activations.scale_to_beta("tanh", 1.0)


@pytest.mark.parametrize("beta", [1e-6, 1e-5, 1e-3])
def test_float16_narrow_widths_stay_finite(beta):
    x = ops.cast(np.array([-np.inf, -1.0, -1e-4, 0.0, 1e-4, 1.0, np.inf]), "float16")
    for y in (activations.smelu(x, beta), activations.generalized_smelu(x, beta, beta, 0.1, 1.0)):
        got = numpy(ops.cast(y, "float32"))
        assert not np.isnan(got).any(), got
        assert got[-1] == np.inf and abs(got[2]) < 1e-3 and got[-2] == pytest.approx(1.0, abs=1e-3)


def test_generalized_smelu_is_finite_at_infinities_with_zero_slopes():
    x = np.array([-np.inf, np.inf], "float32")
    fixed = numpy(activations.generalized_smelu(x, 0.5, 0.5, 0.0, 0.0))
    np.testing.assert_array_equal(fixed, [0.0, 0.0])  # both lines flat
    tensors = [ops.convert_to_tensor(np.float32(v)) for v in (0.5, 0.5, 0.0, 1.0)]
    learned = numpy(activations.generalized_smelu(x, *tensors))
    np.testing.assert_array_equal(learned, [0.0, np.inf])
    layer = keras_smelu.GeneralizedSmeLU(learnable=True)  # slope_left 0, as learnable weights
    np.testing.assert_array_equal(numpy(layer(x)), [0.0, np.inf])
