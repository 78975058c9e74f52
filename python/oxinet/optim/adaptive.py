"""Adaptive-rate optimizers: RMSprop, Adam, AdamW, Adagrad (course F20, F21)."""

from __future__ import annotations

import math

import numpy as np

from oxinet.grad_mode import no_grad
from oxinet.optim.optimizer import Optimizer, _check


def _grad(p, group):
    g = p.grad._data
    if group.get("maximize"):
        g = -g
    return g


class RMSprop(Optimizer):
    """RMSprop (F20, I2DL form): ``s = alpha s + (1 - alpha) g^2``,
    ``p -= lr g / (sqrt(s) + eps)``. ``centered`` subtracts the squared mean gradient;
    ``momentum`` accumulates the scaled step."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 *, maximize=False):
        _check(lr >= 0, "RMSprop", f"invalid learning rate: {lr}")
        _check(eps >= 0, "RMSprop", f"invalid epsilon value: {eps}")
        _check(0 <= alpha, "RMSprop", f"invalid alpha value: {alpha}")
        _check(momentum >= 0, "RMSprop", f"invalid momentum value: {momentum}")
        _check(weight_decay >= 0, "RMSprop", f"invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for group in self.param_groups:
            lr, alpha, eps, wd, mom = group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _grad(p, group)
                if wd:
                    g = g + wd * p._data
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {"step": 0, "square_avg": np.zeros_like(p._data)}
                    if mom > 0:
                        st["momentum_buffer"] = np.zeros_like(p._data)
                    if group["centered"]:
                        st["grad_avg"] = np.zeros_like(p._data)
                st["step"] += 1
                sa = st["square_avg"]
                sa *= alpha
                sa += (1 - alpha) * g * g
                if group["centered"]:
                    ga = st["grad_avg"]
                    ga *= alpha
                    ga += (1 - alpha) * g
                    avg = np.sqrt(sa - ga * ga) + eps
                else:
                    avg = np.sqrt(sa) + eps
                if mom > 0:
                    buf = st["momentum_buffer"]
                    buf *= mom
                    buf += g / avg
                    p._data -= lr * buf
                else:
                    p._data -= lr * g / avg
        return loss


class Adam(Optimizer):
    """Adam with bias correction (F21): ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``. ``weight_decay`` adds an L2
    term to the gradient (use :class:`AdamW` for decoupled decay); ``amsgrad`` uses the
    running maximum of v."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 *, maximize=False):
        name = type(self).__name__
        _check(lr >= 0, name, f"invalid learning rate: {lr}")
        _check(eps >= 0, name, f"invalid epsilon value: {eps}")
        _check(0 <= betas[0] < 1, name, f"invalid beta parameter at index 0: {betas[0]}")
        _check(0 <= betas[1] < 1, name, f"invalid beta parameter at index 1: {betas[1]}")
        _check(weight_decay >= 0, name, f"invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _grad(p, group)
                if wd:
                    if self._decoupled:
                        p._data *= 1 - lr * wd
                    else:
                        g = g + wd * p._data
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {"step": 0, "exp_avg": np.zeros_like(p._data),
                                          "exp_avg_sq": np.zeros_like(p._data)}
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = np.zeros_like(p._data)
                st["step"] += 1
                t = st["step"]
                m, v = st["exp_avg"], st["exp_avg_sq"]
                # the same arithmetic as m = b1 m + (1 - b1) g etc., in place in two scratch arrays
                if g.dtype == m.dtype:
                    tmp = np.multiply(g, 1 - b1)
                    m *= b1
                    m += tmp
                    np.multiply(g, 1 - b2, out=tmp)
                    tmp *= g
                    v *= b2
                    v += tmp
                else:
                    m *= b1
                    m += (1 - b1) * g
                    v *= b2
                    v += (1 - b2) * g * g
                    tmp = np.empty_like(m)
                bc1 = 1 - b1**t
                bc2 = 1 - b2**t
                if group["amsgrad"]:
                    vmax = st["max_exp_avg_sq"]
                    np.maximum(vmax, v, out=vmax)
                    v = vmax
                denom = np.sqrt(v, out=tmp)
                denom /= math.sqrt(bc2)
                denom += eps
                step = np.multiply(m, lr / bc1)
                step /= denom
                p._data -= step
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam step
    (default weight_decay 0.01, like PyTorch)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class Adagrad(Optimizer):
    """Adagrad: ``s += g^2``, ``p -= clr g / (sqrt(s) + eps)`` with
    ``clr = lr / (1 + (t - 1) lr_decay)``."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 *, maximize=False):
        _check(lr >= 0, "Adagrad", f"invalid learning rate: {lr}")
        _check(lr_decay >= 0, "Adagrad", f"invalid lr_decay value: {lr_decay}")
        _check(weight_decay >= 0, "Adagrad", f"invalid weight_decay value: {weight_decay}")
        _check(initial_accumulator_value >= 0, "Adagrad",
               f"invalid initial_accumulator_value value: {initial_accumulator_value}")
        _check(eps >= 0, "Adagrad", f"invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _grad(p, group)
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * p._data
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {"step": 0, "sum": np.full_like(p._data, group["initial_accumulator_value"])}
                st["step"] += 1
                clr = group["lr"] / (1 + (st["step"] - 1) * group["lr_decay"])
                s = st["sum"]
                s += g * g
                p._data -= clr * g / (np.sqrt(s) + group["eps"])
        return loss
