"""Loss Functions on the fused Rust kernels of :mod:`oxinet.ops.loss`.

Measured on the shared 2-core machine (float32, forward + backward, medians; noisy):
cross-entropy (64, 10) 42 us NumPy -> 14 us Rust, (256, 1000) 17 ms -> 0.15 ms, so
``F.cross_entropy`` always runs on the kernel. BCE-with-logits: Rust wins on small inputs
(64 x 10: 45 -> 19 us) but its kernel was slower than the NumPy expression from a few
thousand elements on (256 x 100: 0.19 ms NumPy vs 0.46 ms Rust), so only inputs up to
``BCE_RUST_MAX`` elements use it.
"""

from __future__ import annotations

import numpy as np

from oxinet import ops
from oxinet.autograd.function import Function

BCE_RUST_MAX = 4096


class CrossEntropyFn(Function):
    """Loss and logits gradient in one kernel pass (gradient only when recording)."""

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction, label_smoothing):
        kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
        if ctx.needs_input_grad[0]:
            go = 1.0
            if reduction == "none":
                tshape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
                go = np.ones(tshape, x.dtype)
            loss, grad = ops.cross_entropy_with_grad(x, target, weight, grad_output=go, **kw)
            ctx.grad = grad.astype(x.dtype, copy=False)
        else:
            loss = ops.cross_entropy(x, target, weight, **kw)
        ctx.reduction, ctx.ndim = reduction, x.ndim
        return np.asarray(loss, dtype=x.dtype)

    @staticmethod
    def backward(ctx, g):
        grad = ctx.grad
        if ctx.reduction == "none" and ctx.ndim > 1:
            g = np.expand_dims(g, 1)
        return grad * g.astype(grad.dtype, copy=False), None, None, None, None, None


class BCEWithLogitsFn(Function):
    @staticmethod
    def forward(ctx, x, y, weight, pos_weight, reduction):
        if ctx.needs_input_grad[0]:
            go = np.ones(x.shape, x.dtype) if reduction == "none" else 1.0
            loss, grad = ops.binary_cross_entropy_with_logits_with_grad(x, y, weight, pos_weight=pos_weight,
                                                                        reduction=reduction, grad_output=go)
            ctx.grad = grad.astype(x.dtype, copy=False)
        else:
            loss = ops.binary_cross_entropy_with_logits(x, y, weight, pos_weight=pos_weight, reduction=reduction)
        return np.asarray(loss, dtype=x.dtype)

    @staticmethod
    def backward(ctx, g):
        return ctx.grad * g.astype(ctx.grad.dtype, copy=False), None, None, None, None
