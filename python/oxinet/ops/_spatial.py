"""Shared argument handling of the spatial ops (pooling, unpooling, interpolation).

Turns ``int | tuple`` parameters into tuples, checks ranks, and views ``(N, C, *spatial)``
arrays as the C-contiguous ``(P, H, W)`` planes the Rust kernels take (1-D ops use
``H == 1``).
"""

from __future__ import annotations

import operator

import numpy as np

from oxinet.ops._checks import as_float_array


def int_tuple(value, n: int, name: str, op: str, minimum: int) -> tuple:
    """``value`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` ints >= ``minimum``."""
    if isinstance(value, (tuple, list)):
        items = list(value)
        if len(items) == 1 and n > 1:
            items = items * n
    else:
        items = [value] * n
    if len(items) != n:
        raise ValueError(f"{op}: '{name}' must be an int or a sequence of {n} ints, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or isinstance(v, (float, np.floating)):
            raise TypeError(f"{op}: '{name}' must contain ints, got {value!r}")
        try:
            out.append(operator.index(v))
        except TypeError:
            raise TypeError(f"{op}: '{name}' must contain ints, got {value!r}") from None
    if any(v < minimum for v in out):
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{op}: '{name}' must be {what}, got {value!r}")
    return tuple(out)


def shape_tuple(shape, name: str, op: str) -> tuple:
    """A user-given array shape as a tuple of non-negative ints."""
    try:
        out = tuple(operator.index(v) for v in shape)
    except TypeError:
        raise TypeError(f"{op}: '{name}' must be a sequence of ints, got {shape!r}") from None
    if any(v < 0 for v in out):
        raise ValueError(f"{op}: '{name}' must not contain negative sizes, got {shape!r}")
    return out


def check_rank(shape: tuple, spatial: int, name: str, op: str) -> None:
    """Pooling accepts batched ``(N, C, *spatial)`` or unbatched ``(C, *spatial)`` shapes,
    with only the batch dimension allowed to be 0."""
    if len(shape) not in (spatial + 1, spatial + 2):
        dims = "L" if spatial == 1 else "H, W"
        raise ValueError(
            f"{op}: '{name}' must be {spatial + 1}-D (C, {dims}) or {spatial + 2}-D (N, C, {dims}), "
            f"got shape {shape}"
        )
    first = 1 if len(shape) == spatial + 2 else 0
    if any(v == 0 for v in shape[first:]):
        raise ValueError(
            f"{op}: '{name}' has shape {shape}; only the batch dimension may be 0"
        )


def planes(shape: tuple, spatial: int) -> tuple:
    """``(P, H, W)`` of an array shape with ``spatial`` trailing spatial dims."""
    p = int(np.prod(shape[:-spatial], dtype=np.int64))
    if spatial == 1:
        return (p, 1, shape[-1])
    return (p, shape[-2], shape[-1])


def as_planes(x: np.ndarray, spatial: int, dtype) -> np.ndarray:
    """C-contiguous ``(P, H, W)`` view (or copy) of ``x`` in ``dtype``."""
    return np.ascontiguousarray(x, dtype=dtype).reshape(planes(x.shape, spatial))


def float_input(x, name: str, op: str, spatial: int) -> np.ndarray:
    x = as_float_array(x, name, op)
    check_rank(x.shape, spatial, name, op)
    return x


def index_array(indices, name: str, op: str) -> np.ndarray:
    """Integer indices as an int64 array; other dtypes raise ``TypeError``."""
    arr = np.asarray(indices)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: '{name}' must be an integer (int64) array, got dtype {arr.dtype}")
    return arr
