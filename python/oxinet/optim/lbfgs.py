"""L-BFGS for small full-batch problems (course F25), with PyTorch's closure API.

All parameters are treated as one flat vector θ. The search direction comes from the
two-loop recursion over the last ``history_size`` pairs (s, y) = (Δθ, Δ∇); the step is
``lr`` (the first step is scaled by 1/||g||_1), or chosen by a strong-Wolfe line search
(``line_search_fn='strong_wolfe'``). Both pieces are the ones of :mod:`oxinet.optimize`
(:class:`~oxinet.optimize.LBFGSMemory`, :func:`~oxinet.optimize.strong_wolfe_line_search`);
this class adds PyTorch's closure protocol and its per-``step`` iteration budget.
"""

from __future__ import annotations

import numpy as np

from oxinet.grad_mode import enable_grad, no_grad
from oxinet.optim._flat import FlatParams
from oxinet.optim.optimizer import Optimizer, _check
from oxinet.optimize.lbfgs import LBFGSMemory
from oxinet.optimize.line_search import strong_wolfe_line_search


class LBFGS(FlatParams, Optimizer):
    """L-BFGS (one parameter group). ``step(closure)`` runs up to ``max_iter`` iterations;
    ``closure`` must zero the gradients, compute the loss, call ``backward()`` and return
    the loss."""

    def __init__(self, params, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        _check(lr > 0, "LBFGS", f"invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: 'line_search_fn' must be None or 'strong_wolfe', got {line_search_fn!r}")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def step(self, closure):
        if closure is None:
            raise ValueError("LBFGS.step requires a closure that re-evaluates the model and returns the loss")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change, hist = group["tolerance_grad"], group["tolerance_change"], group["history_size"]
        state = self.state.setdefault(self._params[0], {"func_evals": 0, "n_iter": 0})

        def evaluate():
            with enable_grad():
                return closure()

        orig_loss = evaluate()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._grad()
        if np.max(np.abs(flat_grad)) <= tol_grad:
            return orig_loss

        memory = state.get("memory")
        if memory is None or memory.m != hist:
            memory = state["memory"] = LBFGSMemory(hist)
        d = state.get("d")
        t = state.get("t")
        prev_flat_grad = state.get("prev_flat_grad")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                memory.reset()
            else:
                memory.update(d * t, flat_grad - prev_flat_grad)
            d = memory.direction(flat_grad)
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(np.sum(np.abs(flat_grad)))) * lr
            else:
                t = lr
            gtd = float(flat_grad @ d)
            if gtd > -tol_change:
                break
            ls_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x0 = self._flat()

                def fg(x):
                    self._set(x)
                    return float(evaluate()), self._grad()

                res = strong_wolfe_line_search(fg, x0, d, loss, flat_grad, alpha0=t)
                ls_evals = res.n_fev
                if res.alpha == 0.0:  # no acceptable step: stay put and stop
                    self._set(x0)
                    t = 0.0
                    current_evals += ls_evals
                    state["func_evals"] += ls_evals
                    break
                t, loss, flat_grad = res.alpha, res.fun, res.grad
                self._set(x0 + t * d)
                opt_cond = np.max(np.abs(flat_grad)) <= tol_grad
            else:
                with no_grad():
                    self._add(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    loss = float(evaluate())
                    flat_grad = self._grad()
                    opt_cond = np.max(np.abs(flat_grad)) <= tol_grad
                    ls_evals = 1
            current_evals += ls_evals
            state["func_evals"] += ls_evals
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.max(np.abs(d * t)) <= tol_change:
                break
            if abs(loss - prev_loss) < tol_change:
                break

        state.update(d=d, t=t, prev_flat_grad=prev_flat_grad)
        return orig_loss
