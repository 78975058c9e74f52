"""``summary(model, input_shape)``: a Keras-style per-layer table from one small forward pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import oxinet
from oxinet import nn
from oxinet.tensor import Tensor


@dataclass
class LayerRow:
    name: str          # dotted module path
    type: str          # class name
    output_shape: tuple  # shapes with the batch dim, or a tuple of them for several outputs
    params: int        # parameters owned by this module and not listed in an earlier row
    trainable: int


@dataclass
class ModelSummary:
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    buffer_elements: int = 0
    input_shape: tuple = ()
    output_shape: tuple = ()

    def __str__(self):
        def shp(s):
            if len(s) and isinstance(s[0], tuple):
                return ", ".join(shp(t) for t in s)
            return "(" + ", ".join(["None"] + [str(v) for v in s[1:]]) + ")"

        head = ("Layer (type)", "Output Shape", "Param #")
        body = [(f"{r.name} ({r.type})", shp(r.output_shape), f"{r.params:,}") for r in self.rows]
        w0 = max([len(head[0])] + [len(b[0]) for b in body])
        w1 = max([len(head[1])] + [len(b[1]) for b in body])
        w2 = max([len(head[2])] + [len(b[2]) for b in body])
        line = "=" * (w0 + w1 + w2 + 6)
        out = [line, f"{head[0]:<{w0}}   {head[1]:<{w1}}   {head[2]:>{w2}}", line]
        out += [f"{a:<{w0}}   {b:<{w1}}   {c:>{w2}}" for a, b, c in body]
        out += [line,
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.non_trainable_params:,}",
                f"Buffers (e.g. BatchNorm running statistics, not counted above): {self.buffer_elements:,}",
                line]
        return "\n".join(out)

    def __repr__(self):
        return str(self)


def _shape_of(out):
    if isinstance(out, (Tensor, np.ndarray)):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        shapes = tuple(_shape_of(o) for o in out if isinstance(o, (Tensor, np.ndarray, tuple, list)))
        return shapes
    return ()


def summary(model, input_shape, batch_size: int = 2, dtype=np.float32, print_fn=None) -> ModelSummary:
    """Run ``model`` once on zeros of shape ``(batch_size, *input_shape)`` (several inputs: a
    list of shapes) under ``no_grad`` and in eval mode (restored afterwards), recording every
    leaf module's output shape and parameter count in call order.

    Returns a :class:`ModelSummary` (``str()`` gives the table; ``total_params``,
    ``trainable_params``, ``non_trainable_params`` are exact counts over ``model.parameters()``,
    whether or not the forward reached them). ``print_fn`` (e.g. ``print``) receives the table.
    """
    module = getattr(model, "module", model) if not isinstance(model, nn.Module) else model
    if not isinstance(module, nn.Module):
        raise TypeError(f"summary: 'model' must be an oxinet.nn.Module, got {type(model).__name__}")
    shapes = input_shape
    if not (isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple))):
        shapes = [shapes]
    for s in shapes:
        if not all(isinstance(v, (int, np.integer)) and v > 0 for v in s):
            raise ValueError(f"summary: 'input_shape' must hold positive ints (without the batch dim), got {input_shape!r}")
    rows, seen, handles = [], set(), []
    names = {id(m): n for n, m in module.named_modules()}

    def hook(m, args, out):
        own = [p for p in m.parameters(recurse=not m._modules) if id(p) not in seen]
        seen.update(id(p) for p in own)
        rows.append(LayerRow(names.get(id(m), "?"), type(m).__name__, _shape_of(out),
                             int(sum(p.numel() for p in own)),
                             int(sum(p.numel() for p in own if p.requires_grad))))

    for n, m in module.named_modules():
        if m is module:
            continue
        if not m._modules or m._parameters:
            handles.append(m.register_forward_hook(hook))
    was_training = module.training
    module.eval()
    try:
        xs = [oxinet.zeros((batch_size,) + tuple(int(v) for v in s), dtype=dtype) for s in shapes]
        with oxinet.no_grad():
            out = module(*xs)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    params = list(module.parameters())
    total = int(sum(p.numel() for p in params))
    trainable = int(sum(p.numel() for p in params if p.requires_grad))
    res = ModelSummary(rows, total, trainable, total - trainable,
                       int(sum(b.numel() for b in module.buffers() if b is not None)),
                       tuple(tuple(s) for s in shapes), _shape_of(out))
    if print_fn is not None:
        print_fn(str(res))
    return res


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (each shared parameter once)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
