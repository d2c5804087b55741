"""The SmeLU and g-SmeLU gradient rules: against the formula, finite differences and autodiff."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from keras_smelu import activations
from tests import reference
from tests._backend import grads

pytestmark = pytest.mark.backend


def _finite_difference(fn, x, h=1e-6):
    x = np.asarray(x, np.float64)
    return (fn(x + h) - fn(x - h)) / (2 * h)


@pytest.mark.parametrize("beta", [0.5, 0.1, 2.0])
def test_smelu_gradient_is_exact_including_joints(beta):
    x = np.concatenate([[-beta, beta, 0.0, -3 * beta, 3 * beta], np.linspace(-2, 2, 101) * beta])
    x = x.astype("float32")
    (gx,) = grads(lambda t: activations.smelu(t, beta), x)
    np.testing.assert_allclose(gx, reference.smelu_grad(x, beta), rtol=1e-6, atol=1e-7)
    assert gx[0] == 0.0 and gx[1] == 1.0  # the joints: autodiff of clip gives 0.5 here on JAX


def test_smelu_gradient_matches_finite_differences_off_the_joints():
    beta = 0.7
    x = np.array([-1.3, -0.69, -0.3, 0.0, 0.42, 0.69, 1.1], "float32")
    (gx,) = grads(lambda t: activations.smelu(t, beta), x)
    fd = _finite_difference(lambda v: reference.smelu(v, beta), x.astype("float64"))
    np.testing.assert_allclose(gx, fd, rtol=1e-4, atol=1e-6)


def test_smelu_gradient_matches_autodiff_of_the_formula_off_the_joints():
    beta = 0.5
    x = np.array([-1.0, -0.3, 0.1, 0.4, 2.0], "float32")

    def naive(t):  # branchwise formula; autodiff is right away from the joints
        band = ops.square(t + beta) / (4 * beta)
        return ops.where(t <= -beta, 0.0 * t, ops.where(t >= beta, t, band))

    (want,) = grads(naive, x)
    (got,) = grads(lambda t: activations.smelu(t, beta), x)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_gradient_is_finite_at_infinities():
    x = np.array([-np.inf, np.inf], "float32")
    (gx,) = grads(lambda t: activations.smelu(t, 0.5), x)
    np.testing.assert_array_equal(gx, [0.0, 1.0])


def test_learnable_width_gradient():
    beta = np.float32(0.5)
    x = np.array([-0.8, -0.5, -0.2, 0.0, 0.3, 0.5, 0.9], "float32")
    gx, gbeta = grads(lambda t, b: activations.smelu(t, b), x, beta)
    np.testing.assert_allclose(gx, reference.smelu_grad(x, 0.5), atol=1e-7)
    inside = np.abs(x) < beta
    want = np.where(inside, (beta**2 - x.astype(np.float64) ** 2) / (4 * beta**2), 0.0).sum()
    assert gbeta.shape == ()
    np.testing.assert_allclose(gbeta, want, rtol=1e-5)
    fd = _finite_difference(lambda b: reference.smelu(x, b).sum(), 0.5, h=1e-4)
    np.testing.assert_allclose(gbeta, fd, rtol=1e-4)


def test_per_unit_width_gradient_is_summed_over_the_batch():
    x = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    beta = np.array([0.3, 1.0, 2.0], "float32")
    _, gbeta = grads(lambda t, b: activations.smelu(t, b), x, beta)
    assert gbeta.shape == (3,)
    for j, b in enumerate(beta):
        fd = _finite_difference(lambda v, j=j: reference.smelu(x[:, j], v).sum(), float(b), 1e-4)
        np.testing.assert_allclose(gbeta[j], fd, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("alpha,beta,gl,gr", [(0.5, 0.5, 0.0, 1.0), (1.0, 0.25, 0.1, 1.2)])
def test_generalized_gradients_match_finite_differences(alpha, beta, gl, gr):
    x = np.array([-2.0, -0.9, -0.4, 0.0, 0.2, 0.6, 3.0], "float32")
    params = [np.float32(v) for v in (alpha, beta, gl, gr)]
    got = grads(lambda t, *p: activations.generalized_smelu(t, *p), x, *params)
    (gx_fixed,) = grads(lambda t: activations.generalized_smelu(t, alpha, beta, gl, gr), x)
    np.testing.assert_allclose(got[0], gx_fixed, rtol=1e-6)
    fd_x = _finite_difference(lambda v: reference.generalized_smelu(v, alpha, beta, gl, gr), x)
    np.testing.assert_allclose(got[0], fd_x, rtol=1e-4, atol=1e-5)
    base = [alpha, beta, gl, gr]
    for i in range(4):

        def total(v, i=i):
            p = list(base)
            p[i] = v
            return reference.generalized_smelu(x, *p).sum()

        fd = _finite_difference(total, base[i], h=1e-5)
        np.testing.assert_allclose(got[i + 1], fd, rtol=1e-3, atol=1e-4)


def test_generalized_gradient_at_the_joints():
    alpha, beta, gl, gr = 0.4, 0.6, 0.1, 0.9
    x = np.array([-alpha, beta], "float32")
    (gx,) = grads(lambda t: activations.generalized_smelu(t, alpha, beta, gl, gr), x)
    np.testing.assert_allclose(gx, [gl, gr], rtol=1e-6)
