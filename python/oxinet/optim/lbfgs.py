"""L-BFGS for small full-batch problems (course F25), with PyTorch's closure API.

All parameters are treated as one flat vector θ. The search direction comes from the
two-loop recursion over the last ``history_size`` pairs (s, y) = (Δθ, Δ∇); the step is
``lr`` (the first step is scaled by 1/||g||_1), or chosen by a strong-Wolfe line search
(``line_search_fn='strong_wolfe'``, Nocedal & Wright, algorithms 3.5-3.6, with cubic
interpolation).
"""

from __future__ import annotations

import math

import numpy as np

from oxinet.grad_mode import enable_grad, no_grad
from oxinet.optim.optimizer import Optimizer, _check


def _cubic_min(x1, f1, g1, x2, f2, g2, lo=None, hi=None):
    """Minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clipped to [lo, hi]."""
    if lo is None:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    sq = d1 * d1 - g1 * g2
    if sq >= 0:
        d2 = math.sqrt(sq)
        if x1 <= x2:
            pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(pos, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(obj, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tol_change=1e-9, max_ls=25):
    """Return (f_new, g_new, t, evals) for a step t along d satisfying the strong Wolfe
    conditions (or the best point found)."""
    d_norm = float(np.max(np.abs(d)))
    f_new, g_new = obj(x, t, d)
    evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    it = 0
    # bracketing phase
    while it < max_ls:
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bf = [f_prev, f_new]
            bg = [g_prev, g_new.copy()]
            bgtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bf, bg = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bf = [f_prev, f_new]
            bg = [g_prev, g_new.copy()]
            bgtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_min(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, min_step, max_step)
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj(x, t, d)
        evals += 1
        gtd_new = float(g_new @ d)
        it += 1
    else:
        bracket, bf, bg = [0.0, t], [f, f_new], [g, g_new]
        bgtd = [gtd, gtd_new]
    # zoom phase
    insuf_progress = False
    lo_pos, hi_pos = (0, 1) if len(bf) == 2 and bf[0] <= bf[-1] else (1, 0)
    while not done and it < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tol_change:
            break
        t = _cubic_min(bracket[0], bf[0], bgtd[0], bracket[1], bf[1], bgtd[1])
        b_max, b_min = max(bracket), min(bracket)
        eps = 0.1 * (b_max - b_min)
        if min(b_max - t, t - b_min) < eps:
            if insuf_progress or t >= b_max or t <= b_min:
                t = b_max - eps if abs(t - b_max) < abs(t - b_min) else b_min + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj(x, t, d)
        evals += 1
        gtd_new = float(g_new @ d)
        it += 1
        if f_new > f + c1 * t * gtd or f_new >= bf[lo_pos]:
            bracket[hi_pos], bf[hi_pos], bg[hi_pos], bgtd[hi_pos] = t, f_new, g_new.copy(), gtd_new
            lo_pos, hi_pos = (0, 1) if bf[0] <= bf[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[hi_pos] - bracket[lo_pos]) >= 0:
                bracket[hi_pos], bf[hi_pos], bg[hi_pos], bgtd[hi_pos] = (
                    bracket[lo_pos], bf[lo_pos], bg[lo_pos], bgtd[lo_pos])
            bracket[lo_pos], bf[lo_pos], bg[lo_pos], bgtd[lo_pos] = t, f_new, g_new.copy(), gtd_new
    t = bracket[lo_pos] if len(bracket) > 1 else bracket[0]
    fb = bf[lo_pos] if len(bf) > 1 else bf[0]
    gb = bg[lo_pos] if len(bg) > 1 else bg[0]
    return fb, gb, t, evals


class LBFGS(Optimizer):
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

    def _flat_grad(self):
        return np.concatenate([
            (p.grad._data if p.grad is not None else np.zeros_like(p._data)).reshape(-1).astype(np.float64)
            for p in self._params
        ])

    def _flat_params(self):
        return np.concatenate([p._data.reshape(-1).astype(np.float64) for p in self._params])

    def _set_params(self, flat):
        i = 0
        for p in self._params:
            n = p.numel()
            p._data[...] = flat[i:i + n].reshape(p.shape)
            i += n

    def _add(self, t, d):
        i = 0
        for p in self._params:
            n = p.numel()
            p._data += (t * d[i:i + n]).reshape(p.shape).astype(p.dtype)
            i += n

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
        flat_grad = self._flat_grad()
        if np.max(np.abs(flat_grad)) <= tol_grad:
            return orig_loss

        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs", [])
        old_stps = state.get("old_stps", [])
        ro = state.get("ro", [])
        h_diag = state.get("H_diag", 1.0)
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                h_diag = 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:
                    if len(old_dirs) == hist:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                q = -flat_grad
                al = [0.0] * len(old_dirs)
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = float(old_stps[i] @ q) * ro[i]
                    q = q - al[i] * old_dirs[i]
                r = q * h_diag
                for i in range(len(old_dirs)):
                    be_i = float(old_dirs[i] @ r) * ro[i]
                    r = r + (al[i] - be_i) * old_stps[i]
                d = r
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
                x0 = self._flat_params()

                def obj(x, step, direction):
                    self._set_params(x + step * direction)
                    f_val = float(evaluate())
                    return f_val, self._flat_grad()

                loss, flat_grad, t, ls_evals = _strong_wolfe(obj, x0, t, d, loss, flat_grad, gtd)
                self._set_params(x0 + t * d)
                opt_cond = np.max(np.abs(flat_grad)) <= tol_grad
            else:
                with no_grad():
                    self._add(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    loss = float(evaluate())
                    flat_grad = self._flat_grad()
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

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss
