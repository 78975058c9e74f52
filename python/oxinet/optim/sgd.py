"""Stochastic gradient descent with momentum (PyTorch's form or the course's EWMA form)."""

from __future__ import annotations

import numpy as np

from oxinet.grad_mode import no_grad
from oxinet.optim.optimizer import Optimizer, _check


class SGD(Optimizer):
    """SGD. With g the gradient (+ weight_decay * p):

    * PyTorch form (default): ``v = momentum * v + (1 - dampening) * g`` (v = g on the first
      step), ``p -= lr * v`` — the course's velocity form v' = b v - lr g (I2DL) for a
      constant learning rate. ``nesterov=True`` steps with ``g + momentum * v``.
    * Course EWMA form (``ewma=True``, Ng F19): ``v = momentum * v + (1 - momentum) * g``
      from v = 0, ``p -= lr * v``.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 *, maximize=False, ewma=False):
        _check(lr >= 0, "SGD", f"invalid learning rate: {lr}")
        _check(momentum >= 0, "SGD", f"invalid momentum value: {momentum}")
        _check(weight_decay >= 0, "SGD", f"invalid weight_decay value: {weight_decay}")
        _check(not nesterov or (momentum > 0 and dampening == 0), "SGD",
               "nesterov momentum requires a momentum and zero dampening")
        _check(not (nesterov and ewma), "SGD", "nesterov=True cannot be combined with ewma=True")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, ewma=ewma))

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for group in self.param_groups:
            lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov, ewma = group["weight_decay"], group["nesterov"], group["ewma"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad._data
                if group["maximize"]:
                    g = -g
                if wd:
                    g = g + wd * p._data
                if mom:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if ewma:
                        if buf is None:
                            buf = state["momentum_buffer"] = np.zeros_like(p._data)
                        buf *= mom
                        buf += (1 - mom) * g
                    elif buf is None:
                        buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
                    else:
                        buf *= mom
                        buf += (1 - damp) * g if damp else g
                    g = g + mom * buf if nesterov else buf
                p._data -= lr * g
        return loss
