"""Second-order methods for small full-batch problems (course F25): Newton's method with a
finite-difference Hessian, and Levenberg-Marquardt / Gauss-Newton for least squares.

Both treat all parameters as one float64 vector θ and cost O(k) gradient evaluations (Newton)
or O(m) backward passes (LM, m residuals) per step, so they are meant for models with at
most a few hundred parameters, as the course says.
"""

from __future__ import annotations

import numpy as np

from oxinet.grad_mode import enable_grad
from oxinet.optim._flat import FlatParams as _FlatMixin
from oxinet.optim.optimizer import Optimizer, _check


class Newton(_FlatMixin, Optimizer):
    """θ ← θ − lr (H + damping I)⁻¹ ∇L(θ), with H from central differences of the gradient
    (2k gradient evaluations for k parameters). ``step(closure)``: the closure zeros the
    gradients, computes the loss, calls ``backward()`` and returns the loss."""

    def __init__(self, params, lr=1.0, damping=0.0, eps=1e-5):
        _check(lr > 0, "Newton", f"invalid learning rate: {lr}")
        _check(damping >= 0, "Newton", f"invalid damping: {damping}")
        super().__init__(params, dict(lr=lr, damping=damping, eps=eps))
        self._params = [p for g in self.param_groups for p in g["params"]]

    def step(self, closure):
        if closure is None:
            raise ValueError("Newton.step requires a closure that computes the loss and calls backward()")
        group = self.param_groups[0]

        def grad_at(theta):
            self._set(theta)
            with enable_grad():
                closure()
            return self._grad()

        theta = self._flat()
        with enable_grad():
            loss = closure()
        g = self._grad()
        k = theta.size
        h = np.empty((k, k))
        eps = group["eps"]
        for i in range(k):
            e = np.zeros(k)
            e[i] = eps
            h[:, i] = (grad_at(theta + e) - grad_at(theta - e)) / (2 * eps)
        h = 0.5 * (h + h.T) + group["damping"] * np.eye(k)
        try:
            delta = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            delta = np.linalg.lstsq(h, g, rcond=None)[0]
        self._set(theta - group["lr"] * delta)
        with enable_grad():
            closure()  # leave gradients consistent with the new parameters
        return loss


class LevenbergMarquardt(_FlatMixin, Optimizer):
    """Levenberg-Marquardt for least squares L = ½||r(θ)||²: solve
    (JᵀJ + λ diag(JᵀJ)) δ = −Jᵀr (``diagonal=False``: + λ I, Levenberg's form; λ = 0:
    Gauss-Newton) and accept the step when the loss falls (λ ← λ·``down``), else reject it
    (λ ← λ·``up``). ``step(closure)``: the closure returns the residual vector r(θ) as a
    Tensor (it need not call backward). Returns ½||r||² before the step."""

    def __init__(self, params, lambda_=1e-3, up=10.0, down=0.1, diagonal=True, max_tries=10):
        _check(lambda_ >= 0, "LevenbergMarquardt", f"invalid lambda_: {lambda_}")
        super().__init__(params, dict(lambda_=lambda_, up=up, down=down, diagonal=diagonal, max_tries=max_tries))
        self._params = [p for g in self.param_groups for p in g["params"]]

    def _residual_and_jacobian(self, closure):
        from oxinet.autograd import grad

        with enable_grad():
            r = closure()
        rd = r._data.reshape(-1).astype(np.float64)
        jac = np.zeros((rd.size, sum(p.numel() for p in self._params)))
        flat_r = r.reshape(-1)
        for j in range(rd.size):
            sel = np.zeros(rd.size, flat_r.dtype)
            sel[j] = 1
            gs = grad([flat_r], self._params, [sel], retain_graph=True, allow_unused=True)
            jac[j] = np.concatenate([
                (gi._data if gi is not None else np.zeros_like(p._data)).reshape(-1)
                for gi, p in zip(gs, self._params)
            ])
        return rd, jac

    def step(self, closure):
        if closure is None:
            raise ValueError("LevenbergMarquardt.step requires a closure that returns the residual vector")
        group = self.param_groups[0]
        theta = self._flat()
        r, jac = self._residual_and_jacobian(closure)
        loss = 0.5 * float(r @ r)
        jtj = jac.T @ jac
        jtr = jac.T @ r
        damp = np.diag(np.diag(jtj)) if group["diagonal"] else np.eye(theta.size)
        lam = group["lambda_"]
        for _ in range(group["max_tries"]):
            try:
                delta = np.linalg.solve(jtj + lam * damp, -jtr)
            except np.linalg.LinAlgError:
                delta = np.linalg.lstsq(jtj + lam * damp, -jtr, rcond=None)[0]
            self._set(theta + delta)
            with enable_grad():
                r_new = closure()._data.reshape(-1).astype(np.float64)
            if 0.5 * float(r_new @ r_new) < loss or lam == 0:
                group["lambda_"] = lam * group["down"]
                return loss
            lam = max(lam, 1e-12) * group["up"]
        self._set(theta)  # no improving step found
        group["lambda_"] = lam
        return loss
