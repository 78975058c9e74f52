"""Backtracking line search with the Armijo (sufficient decrease) condition.

Given a point x, a descent direction p (``g . p < 0`` with g the gradient at x), accept
the first step of ``alpha0, rho alpha0, rho^2 alpha0, ...`` with

    f(x + alpha p) <= f(x) + c1 alpha g . p          (0 < c1 < 1, typically 1e-4)

(INVENTORY F27 names the exact line search argmin_alpha f(x - alpha g); backtracking is
its practical version.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oxinet.optimize._common import check_callable, check_int, check_positive


@dataclass
class LineSearchResult:
    alpha: float       # accepted step (0.0 when no step satisfied the condition)
    fun: float         # f(x + alpha p)
    n_fev: int         # function evaluations used
    success: bool


def backtracking_line_search(f, x, p, fx: float | None = None, g=None, *, alpha0: float = 1.0,
                             c1: float = 1e-4, rho: float = 0.5, max_iter: int = 60) -> LineSearchResult:
    """Armijo backtracking along direction ``p`` from ``x``.

    f: callable on flat vectors -> float; x, p: (n,) float arrays; fx: f(x) if known; g:
    gradient at x (required: the condition needs g . p). Raises ``ValueError`` when p is
    not a descent direction. Non-finite trial values count as failures (the step shrinks).
    """
    op = "backtracking_line_search"
    check_callable(f, "f", op)
    x = np.asarray(x, np.float64)
    p = np.asarray(p, np.float64)
    if g is None:
        raise ValueError(f"{op}: 'g' (the gradient at x) is required for the Armijo condition")
    g = np.asarray(g, np.float64)
    if x.shape != p.shape or x.shape != g.shape or x.ndim != 1:
        raise ValueError(f"{op}: 'x', 'p' and 'g' must be flat vectors of one shape, got "
                         f"{x.shape}, {p.shape}, {g.shape}")
    alpha = check_positive(alpha0, "alpha0", op)
    c1 = float(c1)
    if not 0 < c1 < 1:
        raise ValueError(f"{op}: 'c1' must be in (0, 1), got {c1}")
    rho = float(rho)
    if not 0 < rho < 1:
        raise ValueError(f"{op}: 'rho' must be in (0, 1), got {rho}")
    max_iter = check_int(max_iter, "max_iter", op)
    n_fev = 0
    if fx is None:
        fx = float(f(x))
        n_fev += 1
    slope = float(g @ p)
    if not slope < 0:
        raise ValueError(f"{op}: 'p' is not a descent direction (g . p = {slope:.3e} >= 0)")
    for _ in range(max_iter):
        ft = float(f(x + alpha * p))
        n_fev += 1
        if np.isfinite(ft) and ft <= fx + c1 * alpha * slope:
            return LineSearchResult(alpha, ft, n_fev, True)
        alpha *= rho
    return LineSearchResult(0.0, fx, n_fev, False)
