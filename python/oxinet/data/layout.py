"""Explicit conversions between oxinet's row layout (examples along the first axis, images
NCHW) and the course's column layout (X of shape (n_x, m), Y of shape (1, m) or (C, m))."""

from __future__ import annotations

import numpy as np

__all__ = ["to_column_layout", "from_column_layout"]


def to_column_layout(x, y=None):
    """Rows -> columns. ``x`` (m, ...) is flattened per example and transposed to (n_x, m)
    (an NCHW image batch unrolls each image in C, H, W order). ``y`` (m,) or (m, k) becomes
    (1, m) or (k, m). Returns ``X`` or ``(X, Y)``; the results are C-contiguous copies."""
    a = np.asarray(x)
    if a.ndim < 1:
        raise ValueError(f"to_column_layout: 'x' must have an example axis, got a scalar of shape {a.shape}")
    X = np.ascontiguousarray(a.reshape(a.shape[0], -1).T)
    if y is None:
        return X
    b = np.asarray(y)
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ValueError(f"to_column_layout: 'y' must have shape (m,) or (m, k) with m = {a.shape[0]} "
                         f"examples like 'x' {a.shape}, got {b.shape}")
    Y = np.ascontiguousarray(b.reshape(b.shape[0], -1).T)
    return X, Y


def from_column_layout(X, shape=None, Y=None):
    """Columns -> rows: ``X`` (n_x, m) becomes (m, n_x), or (m, *shape) when ``shape`` (one
    example's shape, e.g. (1, 8, 8)) is given; ``Y`` (1, m) becomes (m,) and (k, m) becomes
    (m, k). Returns ``x`` or ``(x, y)``."""
    A = np.asarray(X)
    if A.ndim != 2:
        raise ValueError(f"from_column_layout: 'X' must be 2-D (n_x, m), got shape {A.shape}")
    x = np.ascontiguousarray(A.T)
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != A.shape[0]:
            raise ValueError(f"from_column_layout: 'shape' {shape} does not hold n_x = {A.shape[0]} values")
        x = x.reshape((A.shape[1],) + shape)
    if Y is None:
        return x
    B = np.asarray(Y)
    if B.ndim != 2 or B.shape[1] != A.shape[1]:
        raise ValueError(f"from_column_layout: 'Y' must be 2-D (k, m) with m = {A.shape[1]}, got shape {B.shape}")
    y = np.ascontiguousarray(B[0] if B.shape[0] == 1 else B.T)
    return x, y
