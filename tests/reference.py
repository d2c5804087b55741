"""NumPy references written straight from the definitions: the activations (float64) and the
Pareto front."""

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


def brute_force_front(values: np.ndarray, directions) -> np.ndarray:
    """The definition: i is on the front iff no j is <= everywhere and < somewhere."""
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    loss = np.asarray(values, dtype=float) * signs
    n = len(loss)
    mask = np.zeros(n, dtype=bool)
    for i in range(n):
        if np.isnan(loss[i]).any():
            continue
        dominated = False
        for j in range(n):
            if j == i or np.isnan(loss[j]).any():
                continue
            if np.all(loss[j] <= loss[i]) and np.any(loss[j] < loss[i]):
                dominated = True
                break
        mask[i] = not dominated
    return mask
