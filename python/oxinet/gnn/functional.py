"""Differentiable gather / scatter over node indices, on the embedding kernels.

``gather_rows(x, index)`` is ``x[index]`` and ``scatter_add(values, index, n)`` sums rows of
``values`` into ``n`` rows; each is the other's gradient.
"""

from __future__ import annotations

import numpy as np

from oxinet import ops
from oxinet.autograd import Function
from oxinet.tensor import Tensor


class _Gather(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.index, ctx.n = index, x.shape[0]
        return ops.embedding(index, x)

    @staticmethod
    def backward(ctx, dy):
        return ops.embedding_backward(dy, ctx.index, ctx.n), None


class _ScatterAdd(Function):
    @staticmethod
    def forward(ctx, values, index, n):
        ctx.index = index
        return ops.embedding_backward(values, index, n)

    @staticmethod
    def backward(ctx, dy):
        return ops.embedding(ctx.index, dy), None, None


def _index(index, name: str, op: str) -> np.ndarray:
    idx = index.numpy() if isinstance(index, Tensor) else np.asarray(index)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{op}: '{name}' must be a 1-D integer array, got dtype {idx.dtype} shape {idx.shape}")
    return idx.astype(np.int64, copy=False)


def gather_rows(x: Tensor, index) -> Tensor:
    """``x[index]``: x (N, F), index (E,) int -> (E, F); gradient scatter-adds back."""
    return _Gather.apply(x, _index(index, "index", "gather_rows"))


def scatter_add(values: Tensor, index, num_nodes: int) -> Tensor:
    """out[i] = sum of ``values[e]`` over e with ``index[e] == i``: values (E, F) -> (num_nodes, F).
    Rows that receive nothing are 0."""
    idx = _index(index, "index", "scatter_add")
    if values.ndim != 2 or values.shape[0] != idx.shape[0]:
        raise ValueError(f"scatter_add: 'values' has shape {tuple(values.shape)}, expected ({idx.shape[0]}, F) "
                         f"for {idx.shape[0]} indices")
    return _ScatterAdd.apply(values, idx, int(num_nodes))


def scatter_mean(values: Tensor, index, num_nodes: int) -> Tensor:
    """Mean of the rows sent to each node (0 for nodes that receive nothing)."""
    idx = _index(index, "index", "scatter_mean")
    count = np.bincount(idx, minlength=num_nodes).astype(values.dtype)
    inv = np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0).astype(values.dtype)
    return scatter_add(values, idx, num_nodes) * Tensor(inv[:, None])
