"""User-defined differentiable operations: subclass :class:`Function`.

This is how a layer is put on top of a kernel pair ``f(x, w, ...)`` / ``f_backward(dy, ...)``
from :mod:`oxinet.ops`::

    class Conv2dFunction(Function):
        @staticmethod
        def forward(ctx, x, w, b, stride, padding):
            ctx.save_for_backward(x, w)
            ctx.stride, ctx.padding = stride, padding
            return ops.conv2d(x, w, b, stride=stride, padding=padding)

        @staticmethod
        def backward(ctx, dy):
            x, w = ctx.saved_tensors
            dx, dw, db = ops.conv2d_backward(dy, x, w, stride=ctx.stride, padding=ctx.padding)
            return dx, dw, db, None, None

    y = Conv2dFunction.apply(x, weight, bias, 1, 1)

Unlike PyTorch, ``forward`` receives the NumPy arrays behind Tensor arguments (other
arguments as given) and returns an array or a tuple of arrays; ``backward`` receives one
NumPy gradient per output (zeros for outputs that got no gradient) and returns one
gradient array (or None) per ``forward`` argument. ``ctx.needs_input_grad`` tells which
arguments need one. ``ctx.mark_non_differentiable(*outputs)`` marks outputs (such as
argmax indices) that get ``requires_grad=False``. A subclass whose ``backward`` returns
only newly allocated arrays, none of them returned twice or kept anywhere, may set
``fresh_grads = True``: leaf gradients are then adopted as ``.grad`` without a copy.
"""

from __future__ import annotations

import numpy as np

from oxinet.grad_mode import state as _GM
from oxinet.autograd.graph import FREED, Node, SelectBackward, MultiGrad


class FunctionCtx(Node):
    """The ``ctx`` object of a :class:`Function`: a graph node with free attributes."""

    __slots__ = ("fn_cls", "needs_input_grad", "_outputs", "_non_diff", "__dict__")

    def save_for_backward(self, *arrays):
        self.saved = tuple(arrays)

    @property
    def saved_tensors(self):
        if self.saved is FREED:
            raise RuntimeError(
                f"{self.name()}: its saved values were freed by a previous backward(); "
                "pass retain_graph=True to keep them"
            )
        return self.saved if self.saved is not None else ()

    def mark_non_differentiable(self, *outputs):
        ids = {id(o) for o in outputs}
        self._non_diff = ids

    def name(self):
        return f"{self.fn_cls.__name__}Backward"

    @property
    def fresh_grads(self):
        return self.fn_cls.fresh_grads

    def backward(self, g):
        if isinstance(g, MultiGrad):
            grads = tuple(
                np.zeros(shape, dtype) if gi is None else gi
                for gi, (shape, dtype) in zip(g.grads, self._outputs)
            )
        else:
            grads = (g,)
        res = self.fn_cls.backward(self, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        n_in = len(self.inputs)
        if len(res) < n_in:
            raise RuntimeError(
                f"{self.fn_cls.__name__}.backward returned {len(res)} gradients but forward took "
                f"{n_in} arguments"
            )
        out = []
        for r in res[:n_in]:
            if r is not None:
                r = r._data if hasattr(r, "_data") else np.asarray(r)
            out.append(r)
        return tuple(out)


class Function:
    """Base class for differentiable operations with a hand-written backward.

    Define ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` as static methods and call
    ``YourFunction.apply(*args)``; see the module documentation.
    """

    fresh_grads = False

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        from oxinet.tensor import Tensor, _edge

        record = _GM.enabled and any(isinstance(a, Tensor) and a._rg for a in args)
        raw = tuple(a._data if isinstance(a, Tensor) else a for a in args)
        ctx = FunctionCtx()
        ctx.fn_cls = cls
        ctx._non_diff = ()
        ctx.needs_input_grad = tuple(record and isinstance(a, Tensor) and a._rg for a in args)
        prev = _GM.enabled
        _GM.enabled = False
        try:
            result = cls.forward(ctx, *raw)
        finally:
            _GM.enabled = prev
        single = not isinstance(result, tuple)
        outs = (result,) if single else result
        outs = tuple(np.asarray(o) if not isinstance(o, np.ndarray) else o for o in outs)
        if not record:
            wrapped = tuple(Tensor._make(o) for o in outs)
            return wrapped[0] if single else wrapped
        ctx.inputs = tuple(_edge(a) if isinstance(a, Tensor) else None for a in args)
        ctx._outputs = tuple((o.shape, o.dtype) for o in outs)
        non_diff = ctx._non_diff
        if single:
            o = outs[0]
            if id(o) in non_diff or o.dtype.kind != "f":
                return Tensor._make(o)
            return Tensor._make(o, ctx)
        wrapped = []
        n = len(outs)
        for i, o in enumerate(outs):
            if id(o) in non_diff or o.dtype.kind != "f":
                wrapped.append(Tensor._make(o))
            else:
                wrapped.append(Tensor._make(o, SelectBackward(ctx, i, n)))
        return tuple(wrapped)
