"""Gradient clipping (course F53): by value (elementwise) and by global norm."""

from __future__ import annotations

import math

import numpy as np

from oxinet.tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad._data for p in parameters if p.grad is not None]


def get_total_norm(grads, norm_type=2.0):
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        return float(max(np.max(np.abs(g)) if g.size else 0.0 for g in grads))
    if norm_type == 2.0:
        # sum of squares in float64 as one product-sum pass per gradient (einsum's own
        # loop, not BLAS: the same bits for any thread count); np.abs(g) ** 2.0 went
        # through the general float power: 206k float32 gradients 1176 -> 121 us
        total = 0.0
        for g in grads:
            d = g.astype(np.float64).reshape(-1)
            total += float(np.einsum("i,i->", d, d))
        return math.sqrt(total)
    return float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False):
    """Rescale all gradients together so their global ``norm_type``-norm is at most
    ``max_norm``: g *= max_norm / (total_norm + 1e-6) when total_norm > max_norm.
    Returns the total norm before clipping (a 0-d Tensor)."""
    grads = _grads(parameters)
    total = get_total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite ({total})"
        )
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        with np.errstate(invalid="ignore"):
            for g in grads:
                g *= coef
    return Tensor(np.asarray(total, np.float32))


def clip_grad_value_(parameters, clip_value: float):
    """Clip every gradient element to [-clip_value, clip_value] in place."""
    c = float(clip_value)
    if c < 0:
        raise ValueError(f"clip_grad_value_: 'clip_value' must be non-negative, got {clip_value}")
    for g in _grads(parameters):
        np.clip(g, -c, c, out=g)
