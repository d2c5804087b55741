"""NumPy references of the activations, written straight from the formulas (float64)."""

from __future__ import annotations

import numpy as np


def smelu(x, beta):
    x = np.asarray(x, np.float64)
    if beta == 0:
        return np.maximum(x, 0.0)
    band = (x + beta) ** 2 / (4 * beta)
    return np.where(x <= -beta, 0.0, np.where(x >= beta, x, band))


def smelu_grad(x, beta):
    return np.clip((np.asarray(x, np.float64) + beta) / (2 * beta), 0.0, 1.0)


def generalized_smelu(x, alpha, beta, gl, gr):
    x = np.asarray(x, np.float64)
    w = alpha + beta
    u = x + alpha

    def band(uv):
        return -gl * alpha + gl * uv + (gr - gl) * uv**2 / (2 * w)

    y_beta = band(beta + alpha)
    return np.where(x <= -alpha, gl * x, np.where(x >= beta, y_beta + gr * (x - beta), band(u)))
