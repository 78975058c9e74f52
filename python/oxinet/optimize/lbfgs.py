"""L-BFGS over flat NumPy vectors: the two-loop recursion, a limited memory, a minimiser.

Reuse (e.g. by ``oxinet.optim.LBFGS``): the pieces work on flat float64 vectors only, so
an optimiser over Tensors flattens its parameters and gradients into one vector
(``np.concatenate([p.ravel() for p in params])``), and calls

* ``LBFGSMemory(m)``: ``update(s, y)`` after each step with ``s = x_new - x_old`` and
  ``y = g_new - g_old`` (pairs with too little curvature are skipped, keeping H positive
  definite), ``direction(g)`` for the search direction ``-H g``, ``reset()``;
* ``two_loop(g, s_list, y_list)``: the bare recursion, ``H g`` for the inverse-Hessian
  approximation defined by the pairs (oldest first) and ``H0 = gamma I`` with
  ``gamma = s.y / y.y`` of the newest pair;
* ``backtracking_line_search`` or ``strong_wolfe_line_search`` from
  :mod:`oxinet.optimize.line_search` for the step;

or simply ``minimize_lbfgs(f, grad, x0)`` with closures that unflatten x. The
quasi-Newton idea is INVENTORY F25 ("BFGS / L-BFGS approximate H^-1").
"""

from __future__ import annotations

from collections import deque

import numpy as np

from oxinet.optimize._common import (OptimizeResult, call_vector, check_callable, check_int,
                                     check_positive, flat_vector)
from oxinet.optimize.line_search import backtracking_line_search, strong_wolfe_line_search


def two_loop(g, s_list, y_list, gamma: float | None = None) -> np.ndarray:
    """``H g`` by the L-BFGS two-loop recursion.

    g: (n,) vector; s_list, y_list: sequences of (n,) vectors, oldest first, with
    ``s_i . y_i > 0``; gamma: initial scaling H0 = gamma I (default ``s.y / y.y`` of the
    newest pair, 1 without pairs).
    """
    q = np.array(g, dtype=np.float64)
    k = len(s_list)
    if k != len(y_list):
        raise ValueError(f"two_loop: 's_list' has {k} vectors but 'y_list' has {len(y_list)}")
    rho = [1.0 / float(y_list[i] @ s_list[i]) for i in range(k)]
    alpha = [0.0] * k
    for i in range(k - 1, -1, -1):
        alpha[i] = rho[i] * float(s_list[i] @ q)
        q -= alpha[i] * y_list[i]
    if gamma is None:
        gamma = float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1]) if k else 1.0
    r = gamma * q
    for i in range(k):
        beta = rho[i] * float(y_list[i] @ r)
        r += (alpha[i] - beta) * s_list[i]
    return r


class LBFGSMemory:
    """The last ``m`` curvature pairs (s, y) and the search direction they define."""

    def __init__(self, m: int = 10, *, curvature_eps: float = 1e-10):
        self.m = check_int(m, "m", "LBFGSMemory")
        self.curvature_eps = float(curvature_eps)
        self.s = deque(maxlen=self.m)
        self.y = deque(maxlen=self.m)

    def __len__(self):
        return len(self.s)

    def update(self, s, y) -> bool:
        """Store the pair unless ``s.y <= eps ||s|| ||y||``; returns whether it was stored."""
        s = np.asarray(s, np.float64).copy()
        y = np.asarray(y, np.float64).copy()
        sy = float(s @ y)
        if not np.isfinite(sy) or sy <= self.curvature_eps * np.linalg.norm(s) * np.linalg.norm(y):
            return False
        self.s.append(s)
        self.y.append(y)
        return True

    def direction(self, g) -> np.ndarray:
        """Search direction ``-H g`` (steepest descent when the memory is empty)."""
        if not self.s:
            return -np.asarray(g, np.float64)
        return -two_loop(g, list(self.s), list(self.y))

    def reset(self) -> None:
        self.s.clear()
        self.y.clear()


def minimize_lbfgs(f, grad, x0, *, m: int = 10, gtol: float = 1e-8, ftol: float = 0.0,
                   max_iter: int = 1000, line_search: str = "armijo", c1: float = 1e-4, c2: float = 0.9,
                   callback=None) -> OptimizeResult:
    """Minimise ``f`` by L-BFGS with a line search: ``"armijo"`` (backtracking, c1) or
    ``"strong_wolfe"`` (c1, c2; every accepted step then has positive curvature).

    f: x -> float; grad: x -> (n,), or ``None`` when ``f`` returns ``(value, gradient)``;
    x0: (n,) start; m: history size; stops when ``||grad||_inf <= gtol`` or a step lowers
    f by less than ``ftol * max(1, |f|)``; callback(x) after every iteration. The first
    step is scaled to length at most 1.
    """
    op = "minimize_lbfgs"
    check_callable(f, "f", op)
    if grad is not None:
        check_callable(grad, "grad", op)
    x = flat_vector(x0, "x0", op)
    n = x.size
    gtol = check_positive(gtol, "gtol", op, allow_zero=True)
    ftol = check_positive(ftol, "ftol", op, allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", op, minimum=0)
    if line_search not in ("armijo", "strong_wolfe"):
        raise ValueError(f"{op}: 'line_search' must be 'armijo' or 'strong_wolfe', got {line_search!r}")

    if grad is None:
        def fg(z):
            v, gz = f(z)
            gz = np.asarray(gz, np.float64)
            if gz.shape != (n,):
                raise ValueError(f"{op}: 'f' returned a gradient of shape {gz.shape}, expected ({n},)")
            return float(v), gz
        fun = lambda z: fg(z)[0]  # noqa: E731
    else:
        def fg(z):
            return float(f(z)), call_vector(grad, z, "grad", op, n)
        fun = lambda z: float(f(z))  # noqa: E731

    mem = LBFGSMemory(m)
    fx, g = fg(x)
    n_fev = 1
    history = [fx]
    for it in range(max_iter + 1):
        gnorm = float(np.max(np.abs(g)))
        if gnorm <= gtol:
            return OptimizeResult(x, fx, gnorm, it, True, "gradient norm below gtol", n_fev, history)
        if it == max_iter:
            break
        p = mem.direction(g)
        if not g @ p < 0:  # lost descent (should not happen with positive curvature): restart
            mem.reset()
            p = -g
        alpha0 = 1.0 if len(mem) else min(1.0, 1.0 / float(np.linalg.norm(p)))
        if line_search == "armijo":
            ls = backtracking_line_search(fun, x, p, fx, g, alpha0=alpha0, c1=c1)
        else:
            ls = strong_wolfe_line_search(fg, x, p, fx, g, alpha0=alpha0, c1=c1, c2=c2)
        n_fev += ls.n_fev
        if ls.alpha == 0.0:
            if len(mem):  # retry once from steepest descent with a fresh memory
                mem.reset()
                continue
            return OptimizeResult(x, fx, gnorm, it, False, "line search failed", n_fev, history)
        x_new = x + ls.alpha * p
        if line_search == "armijo":
            f_new, g_new = fg(x_new)
            n_fev += 1
        else:
            f_new, g_new = ls.fun, ls.grad
        mem.update(x_new - x, g_new - g)
        decrease = fx - f_new
        x, fx, g = x_new, f_new, g_new
        history.append(fx)
        if callback is not None:
            callback(x)
        if ftol > 0 and decrease <= ftol * max(1.0, abs(fx)):
            return OptimizeResult(x, fx, float(np.max(np.abs(g))), it + 1, True,
                                  "relative decrease below ftol", n_fev, history)
    return OptimizeResult(x, fx, float(np.max(np.abs(g))), max_iter, False, "max_iter reached",
                          n_fev, history)
