"""Reverse-mode automatic differentiation: the graph, user Functions, ``grad`` and
gradient checking.

``Tensor.backward()`` (see :mod:`oxinet.tensor`) accumulates into ``.grad``; :func:`grad`
returns gradients without touching ``.grad``; :class:`Function` defines new ops with a
hand-written backward (how layers wrap the Rust kernels of :mod:`oxinet.ops`).
"""

from __future__ import annotations

import numpy as np

from oxinet.autograd.function import Function, FunctionCtx
from oxinet.autograd.graph import Node, run_backward
from oxinet.autograd.gradcheck import GradcheckError, GradcheckResult, gradcheck
from oxinet.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled


def _grads_for(outputs, grad_outputs):
    from oxinet.tensor import Tensor

    grads = []
    for i, o in enumerate(outputs):
        g = None if grad_outputs is None else grad_outputs[i]
        if g is None:
            if o.numel() != 1:
                raise RuntimeError(
                    f"grad: output {i} has shape {o.shape}; pass grad_outputs for non-scalar outputs"
                )
            g = np.ones(o.shape, o.dtype)
        else:
            g = g._data if isinstance(g, Tensor) else np.asarray(g)
            if g.shape != o.shape:
                raise RuntimeError(f"grad: grad_outputs[{i}] has shape {g.shape}, output has shape {o.shape}")
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None):
    """Accumulate gradients of several outputs at once (``sum_i <grad_i, tensor_i>``)."""
    from oxinet.tensor import Tensor

    if isinstance(tensors, Tensor):
        tensors = [tensors]
        if grad_tensors is not None and not isinstance(grad_tensors, (list, tuple)):
            grad_tensors = [grad_tensors]
    tensors = list(tensors)
    run_backward(tensors, _grads_for(tensors, grad_tensors), bool(retain_graph))


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, allow_unused=False):
    """Gradients of ``outputs`` w.r.t. ``inputs`` as a tuple of Tensors; ``.grad`` fields are
    left alone. Inputs may be leaves or intermediate tensors of the graph."""
    from oxinet.tensor import Tensor

    if isinstance(outputs, Tensor):
        outputs = [outputs]
        if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
            grad_outputs = [grad_outputs]
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    outputs = list(outputs)
    capture = {}
    hooks = []
    found = {}
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("grad: one of the inputs does not require grad")
        if t.grad_fn is None:
            capture[id(t)] = None
        else:
            key = id(t)

            def hook(g, key=key):
                found[key] = g._data

            t.grad_fn.register_hook(hook)
            hooks.append((t.grad_fn, hook))
    try:
        run_backward(outputs, _grads_for(outputs, grad_outputs), bool(retain_graph), capture=capture)
    finally:
        for node, h in hooks:
            node.hooks.remove(h)
    result = []
    for i, t in enumerate(inputs):
        g = capture.get(id(t)) if t.grad_fn is None else found.get(id(t))
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {i} was not used in the graph (pass allow_unused=True)")
            result.append(None)
        else:
            result.append(Tensor._make(np.array(np.broadcast_to(g, t.shape), dtype=t.dtype)))
    return tuple(result)


__all__ = [
    "Function", "FunctionCtx", "Node", "GradcheckError", "GradcheckResult", "gradcheck", "grad",
    "backward", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
]
