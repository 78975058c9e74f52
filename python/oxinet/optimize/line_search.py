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


@dataclass
class WolfeResult:
    alpha: float         # accepted step (0.0 on failure)
    fun: float           # f(x + alpha p)
    grad: np.ndarray     # gradient at x + alpha p
    n_fev: int           # (value, gradient) evaluations used
    success: bool


def _cubic_min(a1, f1, d1, a2, f2, d2):
    """Minimiser of the cubic matching values and slopes at a1 and a2 (None if it has none)."""
    d1p = d1 + d2 - 3 * (f1 - f2) / (a1 - a2)
    rad = d1p * d1p - d1 * d2
    if rad < 0:
        return None
    d2p = np.sign(a2 - a1) * np.sqrt(rad)
    den = d2 - d1 + 2 * d2p
    if den == 0:
        return None
    a = a2 - (a2 - a1) * (d2 + d2p - d1p) / den
    return a if np.isfinite(a) else None


def strong_wolfe_line_search(fg, x, p, f0: float, g0, *, alpha0: float = 1.0, c1: float = 1e-4,
                             c2: float = 0.9, max_iter: int = 25, alpha_max: float = 1e10) -> WolfeResult:
    """Step satisfying the strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5-3.6)::

        f(x + a p) <= f(x) + c1 a g.p         (sufficient decrease)
        |g(x + a p) . p| <= c2 |g.p|           (curvature)

    fg: x -> (f, grad); x, p, g0: flat vectors; f0 = f(x). The bracketing phase doubles the
    step; the zoom phase uses safeguarded cubic interpolation. A step that satisfies the
    curvature condition guarantees ``s.y > 0`` for quasi-Newton updates (the variant
    ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` uses).
    """
    op = "strong_wolfe_line_search"
    check_callable(fg, "fg", op)
    x = np.asarray(x, np.float64)
    p = np.asarray(p, np.float64)
    g0 = np.asarray(g0, np.float64)
    if not 0 < c1 < c2 < 1:
        raise ValueError(f"{op}: need 0 < 'c1' < 'c2' < 1, got c1={c1}, c2={c2}")
    d0 = float(g0 @ p)
    if not d0 < 0:
        raise ValueError(f"{op}: 'p' is not a descent direction (g . p = {d0:.3e} >= 0)")
    f0 = float(f0)
    n_fev = 0

    def phi(a):
        nonlocal n_fev
        n_fev += 1
        fa, ga = fg(x + a * p)
        ga = np.asarray(ga, np.float64)
        return float(fa), ga, float(ga @ p)

    def zoom(lo, f_lo, d_lo, hi, f_hi, d_hi, g_lo):
        for _ in range(max_iter):
            a = _cubic_min(lo, f_lo, d_lo, hi, f_hi, d_hi)
            width = hi - lo
            lo_b, hi_b = sorted((lo + 0.1 * width, hi - 0.1 * width))
            if a is None or not lo_b <= a <= hi_b:
                a = 0.5 * (lo + hi)
            fa, ga, da = phi(a)
            if not np.isfinite(fa) or fa > f0 + c1 * a * d0 or fa >= f_lo:
                hi, f_hi, d_hi = a, fa, da
            else:
                if abs(da) <= -c2 * d0:
                    return WolfeResult(a, fa, ga, n_fev, True)
                if da * (hi - lo) >= 0:
                    hi, f_hi, d_hi = lo, f_lo, d_lo
                lo, f_lo, d_lo, g_lo = a, fa, da, ga
            if abs(hi - lo) < 1e-16 * max(1.0, abs(lo)):
                break
        # best point found satisfies sufficient decrease (lo always does) but not curvature
        return WolfeResult(lo, f_lo, g_lo, n_fev, False) if lo > 0 else WolfeResult(0.0, f0, g0, n_fev, False)

    a_prev, f_prev, d_prev, g_prev = 0.0, f0, d0, g0
    a = float(alpha0)
    for i in range(max_iter):
        fa, ga, da = phi(a)
        if not np.isfinite(fa) or fa > f0 + c1 * a * d0 or (i > 0 and fa >= f_prev):
            if not np.isfinite(fa):  # step into overflow: treat as too long, with a zero-slope guess
                da = 0.0
            return zoom(a_prev, f_prev, d_prev, a, fa if np.isfinite(fa) else 1e300, da, g_prev)
        if abs(da) <= -c2 * d0:
            return WolfeResult(a, fa, ga, n_fev, True)
        if da >= 0:
            return zoom(a, fa, da, a_prev, f_prev, d_prev, ga)
        a_prev, f_prev, d_prev, g_prev = a, fa, da, ga
        a = min(2 * a, alpha_max)
    return WolfeResult(a_prev, f_prev, g_prev, n_fev, False)
