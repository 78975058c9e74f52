"""Gauss-Newton and Levenberg-Marquardt for small nonlinear least-squares problems.

Minimise ``F(x) = 0.5 ||r(x)||^2`` for a residual r: R^n -> R^m (m >= n) with Jacobian
J (m, n). The gradient is ``J^T r`` and the Hessian is approximated by ``J^T J``
(INVENTORY F25):

* Gauss-Newton: the step p minimises ``||J p + r||`` (computed with ``lstsq`` on J, which
  is the normal-equation solution ``J^T J p = -J^T r`` without squaring the condition
  number), followed by Armijo backtracking.
* Levenberg-Marquardt: ``(J^T J + lam D) p = -J^T r`` with ``D = diag(J^T J)``
  (Marquardt's scaling; ``scaling="identity"`` gives Levenberg's ``D = I``). The damping
  adapts to the gain ratio rho = actual / predicted decrease: a step with rho > 0 is
  accepted and lam shrinks (by ``max(1/3, 1 - (2 rho - 1)^3)``), a rejected step multiplies
  lam by nu, which doubles after each consecutive rejection (Nielsen's rule). Large lam
  means short gradient-descent-like steps, small lam Gauss-Newton steps.
"""

from __future__ import annotations

import numpy as np

from oxinet.optimize._common import (OptimizeResult, check_callable, check_int, check_positive,
                                     flat_vector)
from oxinet.optimize.line_search import backtracking_line_search


def _eval(residual, jacobian, x, op, m=None):
    r = np.asarray(residual(x), np.float64)
    if r.ndim != 1:
        raise ValueError(f"{op}: 'residual' must return a 1-D vector, got shape {r.shape}")
    if m is not None and r.shape[0] != m:
        raise ValueError(f"{op}: 'residual' changed length from {m} to {r.shape[0]}")
    J = np.asarray(jacobian(x), np.float64) if jacobian is not None else None
    if J is not None and J.shape != (r.shape[0], x.size):
        raise ValueError(f"{op}: 'jacobian' returned shape {J.shape}, expected ({r.shape[0]}, {x.size})")
    return r, J


def _start(residual, jacobian, x0, op):
    check_callable(residual, "residual", op)
    check_callable(jacobian, "jacobian", op)
    x = flat_vector(x0, "x0", op)
    r, J = _eval(residual, jacobian, x, op)
    if r.shape[0] < x.size:
        raise ValueError(f"{op}: 'residual' has {r.shape[0]} entries for {x.size} parameters; "
                         "need at least as many residuals as parameters")
    return x, r, J


def gauss_newton(residual, jacobian, x0, *, gtol: float = 1e-10, xtol: float = 1e-12,
                 max_iter: int = 100, line_search: bool = True) -> OptimizeResult:
    """Gauss-Newton iteration (with Armijo backtracking unless ``line_search=False``).

    residual: x -> (m,); jacobian: x -> (m, n); x0: (n,). ``fun`` of the result is
    ``0.5 ||r||^2``; stops when ``||J^T r||_inf <= gtol`` or the step is below
    ``xtol * (||x|| + xtol)``.
    """
    op = "gauss_newton"
    x, r, J = _start(residual, jacobian, x0, op)
    gtol = check_positive(gtol, "gtol", op, allow_zero=True)
    xtol = check_positive(xtol, "xtol", op, allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", op, minimum=0)
    m = r.shape[0]
    fx = 0.5 * float(r @ r)
    history = [fx]
    n_fev = 1
    fun = lambda z: 0.5 * float(np.sum(np.asarray(residual(z), np.float64) ** 2))  # noqa: E731
    for it in range(max_iter + 1):
        g = J.T @ r
        gnorm = float(np.max(np.abs(g)))
        if gnorm <= gtol:
            return OptimizeResult(x, fx, gnorm, it, True, "gradient norm below gtol", n_fev, history)
        if it == max_iter:
            break
        p = np.linalg.lstsq(J, -r, rcond=None)[0]
        if line_search:
            if not g @ p < 0:
                p = -g
            ls = backtracking_line_search(fun, x, p, fx, g)
            n_fev += ls.n_fev
            if not ls.success:
                return OptimizeResult(x, fx, gnorm, it, False, "line search failed", n_fev, history)
            step = ls.alpha * p
        else:
            step = p
        x = x + step
        r, J = _eval(residual, jacobian, x, op, m)
        n_fev += 1
        fx = 0.5 * float(r @ r)
        history.append(fx)
        if not (np.isfinite(fx) and np.all(np.isfinite(J))):
            return OptimizeResult(x, fx, float("nan"), it + 1, False, "diverged (non-finite residual)",
                                  n_fev, history)
        if np.linalg.norm(step) <= xtol * (np.linalg.norm(x) + xtol):
            g = J.T @ r
            return OptimizeResult(x, fx, float(np.max(np.abs(g))), it + 1, True, "step below xtol",
                                  n_fev, history)
    return OptimizeResult(x, fx, gnorm, max_iter, False, "max_iter reached", n_fev, history)


def levenberg_marquardt(residual, jacobian, x0, *, lam0: float = 1e-3, scaling: str = "marquardt",
                        gtol: float = 1e-10, xtol: float = 1e-12, max_iter: int = 200) -> OptimizeResult:
    """Levenberg-Marquardt with adaptive damping (see the module docstring).

    residual: x -> (m,); jacobian: x -> (m, n); x0: (n,); lam0: initial damping (> 0);
    scaling: ``"marquardt"`` (D = diag J^T J) or ``"identity"`` (D = I). The result also
    carries the final damping in ``message``.
    """
    op = "levenberg_marquardt"
    if scaling not in ("marquardt", "identity"):
        raise ValueError(f"{op}: 'scaling' must be 'marquardt' or 'identity', got {scaling!r}")
    x, r, J = _start(residual, jacobian, x0, op)
    lam = check_positive(lam0, "lam0", op)
    gtol = check_positive(gtol, "gtol", op, allow_zero=True)
    xtol = check_positive(xtol, "xtol", op, allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", op, minimum=0)
    m, n = J.shape
    fx = 0.5 * float(r @ r)
    history = [fx]
    n_fev = 1
    nu = 2.0
    it = 0
    for it in range(max_iter + 1):
        A = J.T @ J
        g = J.T @ r
        gnorm = float(np.max(np.abs(g)))
        if gnorm <= gtol:
            return OptimizeResult(x, fx, gnorm, it, True, f"gradient norm below gtol (lam={lam:.3g})",
                                  n_fev, history)
        if it == max_iter:
            break
        D = np.maximum(np.diag(A), 1e-12) if scaling == "marquardt" else np.ones(n)
        while True:
            try:
                p = np.linalg.solve(A + lam * np.diag(D), -g)
            except np.linalg.LinAlgError:
                lam *= nu
                nu *= 2
                continue
            x_new = x + p
            r_new = np.asarray(residual(x_new), np.float64)
            n_fev += 1
            f_new = 0.5 * float(r_new @ r_new)
            # predicted decrease of the model 0.5||r + J p||^2: -(g.p + 0.5 p.A p) = 0.5 p.(lam D p - g)
            predicted = 0.5 * float(p @ (lam * D * p - g))
            rho = (fx - f_new) / predicted if predicted > 0 else -1.0
            if np.isfinite(f_new) and rho > 0:
                small = np.linalg.norm(p) <= xtol * (np.linalg.norm(x) + xtol)
                x, fx = x_new, f_new
                r, J = _eval(residual, jacobian, x, op, m)
                lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                history.append(fx)
                if small:
                    g = J.T @ r
                    return OptimizeResult(x, fx, float(np.max(np.abs(g))), it + 1, True,
                                          f"step below xtol (lam={lam:.3g})", n_fev, history)
                break
            lam *= nu
            nu *= 2
            if lam > 1e16 or not np.isfinite(lam):
                return OptimizeResult(x, fx, gnorm, it, False, "damping grew without a decrease",
                                      n_fev, history)
    return OptimizeResult(x, fx, gnorm, max_iter, False, f"max_iter reached (lam={lam:.3g})", n_fev, history)
