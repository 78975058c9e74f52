"""Standard test problems: the Rosenbrock function with its gradient and Hessian."""

from __future__ import annotations

import numpy as np


def rosenbrock(x, a: float = 1.0, b: float = 100.0) -> float:
    """sum_i b (x_{i+1} - x_i^2)^2 + (a - x_i)^2; minimum 0 at (a, a^2, ...) (all ones for a=1)."""
    x = np.asarray(x, np.float64)
    return float(np.sum(b * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2))


def rosenbrock_grad(x, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    t = x[1:] - x[:-1] ** 2
    g[:-1] += -4 * b * x[:-1] * t - 2 * (a - x[:-1])
    g[1:] += 2 * b * t
    return g


def rosenbrock_hess(x, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    x = np.asarray(x, np.float64)
    n = x.size
    H = np.zeros((n, n))
    i = np.arange(n - 1)
    H[i, i] += 12 * b * x[:-1] ** 2 - 4 * b * x[1:] + 2
    H[i + 1, i + 1] += 2 * b
    H[i, i + 1] = H[i + 1, i] = -4 * b * x[:-1]
    return H
