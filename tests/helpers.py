"""Shared test utilities: finite-difference gradients and reference comparisons.

Gradient checks use the course's two-sided difference (INVENTORY F16) in float64:
    dJ/dx_i ~= (J(x + eps e_i) - J(x - eps e_i)) / (2 eps)
and compare with the relative difference ||g - g_num|| / (||g|| + ||g_num||).
"""

from __future__ import annotations

import numpy as np


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Two-sided finite-difference gradient of the scalar function ``f`` at ``x``.

    ``x`` is perturbed in place (and restored), so ``f`` must read it afresh each call.
    """
    assert x.dtype == np.float64, "gradient checks run in float64"
    g = np.zeros_like(x)
    flat = x.reshape(-1)  # a view: x must be contiguous
    assert np.shares_memory(flat, x)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f())
        flat[i] = old - eps
        fm = float(f())
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def relative_difference(g: np.ndarray, g_num: np.ndarray) -> float:
    """||g - g_num|| / (||g|| + ||g_num||), 0 when both are zero."""
    num = np.linalg.norm(g - g_num)
    den = np.linalg.norm(g) + np.linalg.norm(g_num)
    return 0.0 if den == 0 else float(num / den)


def check_grad(f, x: np.ndarray, analytic: np.ndarray, eps: float = 1e-6, tol: float = 1e-7) -> None:
    """Assert the analytic gradient of scalar ``f`` w.r.t. ``x`` matches finite differences."""
    g_num = numeric_grad(f, x, eps)
    assert analytic.shape == x.shape, f"gradient shape {analytic.shape} != input shape {x.shape}"
    rd = relative_difference(analytic, g_num)
    assert rd < tol, f"relative difference {rd:.2e} >= {tol:.0e}"


def random_projection(shape, seed: int = 0) -> np.ndarray:
    """A fixed random float64 array to contract an op's output into a scalar loss:
    J = sum(w * op(x)), so dJ/d op(x) = w."""
    return np.random.default_rng(seed).standard_normal(shape)
