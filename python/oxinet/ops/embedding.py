"""Embedding lookup (``torch.nn.functional.embedding``) and its weight gradient.

Course F54: ``e_j = E o_j`` is a row lookup, never a one-hot product. The backward pass
is a scatter-add that handles repeated indices and gives the same bits for any thread
count (positions are bucketed by row with a stable counting sort, then each row is
summed in input order, rows in parallel).
"""

from __future__ import annotations

import operator

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, as_index_array, kernel_for

__all__ = [
    "embedding",
    "embedding_backward",
]


def _padding(padding_idx, num: int, op: str):
    if padding_idx is None:
        return None
    try:
        p = operator.index(padding_idx)
    except TypeError:
        raise TypeError(f"{op}: 'padding_idx' must be an int or None, got {padding_idx!r}") from None
    if not -num <= p < num:
        raise ValueError(f"{op}: 'padding_idx'={p} is out of range for {num} embeddings")
    return p % num


def embedding(input, weight, padding_idx: int | None = None) -> np.ndarray:
    """Rows of ``weight`` selected by ``input``.

    input: integer indices of any shape, each in ``[0, num_embeddings)``; weight:
    (num_embeddings, embedding_dim) float32/float64. Returns ``input.shape + (embedding_dim,)``
    in the weight's dtype. ``padding_idx`` only affects the gradient (as in PyTorch).
    Float or bool indices raise TypeError, out-of-range ones ValueError (naming 'input').
    """
    op = "embedding"
    idx = as_index_array(input, "input", op)
    w = as_float_array(weight, "weight", op)
    if w.ndim != 2:
        raise ValueError(f"{op}: 'weight' must be 2-D (num_embeddings, embedding_dim), got shape {w.shape}")
    _padding(padding_idx, w.shape[0], op)
    flat = np.ascontiguousarray(idx.reshape(-1))
    f = kernel_for(w.dtype, _core.embedding_f32, _core.embedding_f64)
    out = np.empty((flat.size, w.shape[1]), w.dtype)
    f(flat, np.ascontiguousarray(w), out)
    return out.reshape(idx.shape + (w.shape[1],))


def embedding_backward(grad_output, input, num_embeddings: int, padding_idx: int | None = None) -> np.ndarray:
    """Gradient of :func:`embedding` with respect to ``weight``: (num_embeddings, embedding_dim).

    grad_output: ``input.shape + (embedding_dim,)``. Rows hit by several positions get the
    sum of their gradients; the ``padding_idx`` row and unused rows get 0. Deterministic.
    """
    op = "embedding_backward"
    idx = as_index_array(input, "input", op)
    g = as_float_array(grad_output, "grad_output", op)
    try:
        num = operator.index(num_embeddings)
    except TypeError:
        raise TypeError(f"{op}: 'num_embeddings' must be an int, got {num_embeddings!r}") from None
    if num < 0:
        raise ValueError(f"{op}: 'num_embeddings' must be >= 0, got {num}")
    if g.ndim != idx.ndim + 1 or g.shape[:-1] != idx.shape:
        raise ValueError(f"{op}: 'grad_output' has shape {g.shape}, expected {idx.shape} + (embedding_dim,)")
    p = _padding(padding_idx, num, op) if num else None
    g2 = np.ascontiguousarray(g.reshape(-1, g.shape[-1]))
    f = kernel_for(g.dtype, _core.embedding_backward_f32, _core.embedding_backward_f64)
    dw = np.empty((num, g.shape[-1]), g.dtype)
    f(g2, np.ascontiguousarray(idx.reshape(-1)), p, dw)
    return dw
