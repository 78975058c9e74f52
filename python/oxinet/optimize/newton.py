"""Newton's method (INVENTORY F25): ``x_{k+1} = x_k - H(x_k)^{-1} grad(x_k)``.

The step solves ``H p = -g`` (a factorisation, never an explicit inverse). With ``f``
given, the step is globalised by an Armijo backtracking line search, and a Hessian that
is not positive definite is shifted, ``H + tau I`` with tau growing tenfold until the
Cholesky factorisation succeeds, so that p is a descent direction. Without ``f`` this is
the pure Newton iteration (quadratic convergence near a minimum with a positive-definite
Hessian, no guarantee far from it).
"""

from __future__ import annotations

import numpy as np

from oxinet.optimize._common import (OptimizeResult, call_vector, check_callable, check_int,
                                     check_positive, flat_vector)
from oxinet.optimize.line_search import backtracking_line_search


def _newton_direction(H, g):
    n = g.size
    tau = 0.0
    scale = max(1e-8, float(np.max(np.abs(np.diag(H)))) * 1e-3)
    for _ in range(60):
        try:
            L = np.linalg.cholesky(H + tau * np.eye(n))
        except np.linalg.LinAlgError:
            tau = scale if tau == 0 else 10 * tau
            continue
        z = np.linalg.solve(L, -g)
        return np.linalg.solve(L.T, z)
    return -g  # give up on curvature: steepest descent


def newton(grad, hess, x0, *, f=None, tol: float = 1e-10, max_iter: int = 100,
           c1: float = 1e-4) -> OptimizeResult:
    """Minimise with Newton steps.

    grad: x -> (n,) gradient; hess: x -> (n, n) Hessian; x0: (n,) start; f: optional
    objective enabling the line search (and the Hessian shift). Stops when
    ``||grad||_inf <= tol``. Returns an :class:`OptimizeResult`.
    """
    op = "newton"
    check_callable(grad, "grad", op)
    check_callable(hess, "hess", op)
    if f is not None:
        check_callable(f, "f", op)
    x = flat_vector(x0, "x0", op)
    n = x.size
    tol = check_positive(tol, "tol", op, allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", op, minimum=0)
    fx = float(f(x)) if f is not None else float("nan")
    n_fev = 1 if f is not None else 0
    history = [fx]
    g = call_vector(grad, x, "grad", op, n)
    for it in range(max_iter + 1):
        gnorm = float(np.max(np.abs(g)))
        if gnorm <= tol:
            return OptimizeResult(x, fx, gnorm, it, True, "gradient norm below tol", n_fev, history)
        if it == max_iter:
            break
        H = np.asarray(hess(x), np.float64)
        if H.shape != (n, n):
            raise ValueError(f"{op}: 'hess' returned shape {H.shape}, expected ({n}, {n})")
        if f is None:
            try:
                p = np.linalg.solve(H, -g)
            except np.linalg.LinAlgError:
                return OptimizeResult(x, fx, gnorm, it, False, "singular Hessian", n_fev, history)
            x = x + p
        else:
            p = _newton_direction(H, g)
            if not g @ p < 0:
                p = -g
            ls = backtracking_line_search(f, x, p, fx, g, c1=c1)
            n_fev += ls.n_fev
            if not ls.success:
                return OptimizeResult(x, fx, gnorm, it, False, "line search failed", n_fev, history)
            x = x + ls.alpha * p
            fx = ls.fun
        history.append(fx)
        g = call_vector(grad, x, "grad", op, n)
    gnorm = float(np.max(np.abs(g)))
    return OptimizeResult(x, fx, gnorm, max_iter, False, "max_iter reached", n_fev, history)
