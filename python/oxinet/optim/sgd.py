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
                if not ewma and self._fused_step(p, lr, mom, damp, wd, nesterov, group["maximize"]):
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

    def _fused_step(self, p, lr, mom, damp, wd, nesterov, maximize) -> bool:
        """The PyTorch-form update in one Rust pass over p, its gradient and momentum buffer
        (bitwise the same as the NumPy expressions in :meth:`step`); False (nothing done)
        when the arrays do not suit it (dtype, layout, aliasing)."""
        data, g = p._data, p.grad._data
        kernel = _SGD_KERNELS.get(data.dtype)
        if (kernel is None or type(g) is not np.ndarray or g.dtype != data.dtype or g.shape != data.shape
                or not data.flags.c_contiguous or not data.flags.writeable or not g.flags.c_contiguous
                or np.may_share_memory(data, g)):
            return False
        buf, first = None, False
        if mom:
            state = self.state.setdefault(p, {})
            buf = state.get("momentum_buffer")
            if buf is None:
                first = True
                buf = np.empty_like(data)
            elif (type(buf) is not np.ndarray or buf.dtype != data.dtype or buf.shape != data.shape
                  or not buf.flags.c_contiguous or np.may_share_memory(buf, data) or np.may_share_memory(buf, g)):
                return False
        kernel(data, g, buf, first, float(lr), float(mom), 1.0 - float(damp), bool(damp), float(wd),
               bool(nesterov), bool(maximize))
        if first:
            state["momentum_buffer"] = buf
        return True


def _sgd_kernels():
    from oxinet import _core
    return {np.dtype(np.float32): _core.sgd_step_f32, np.dtype(np.float64): _core.sgd_step_f64}


_SGD_KERNELS = _sgd_kernels()
