"""Argument checking shared by every op: dtype policy and clear error messages.

The rule: float32 and float64 arrays (and anything ``np.asarray`` turns into one) are
accepted; mixing them promotes to float64 as NumPy does; every other dtype raises a
``TypeError`` that names the op, the argument and the dtype.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(x, name: str, op: str) -> np.ndarray:
    """``x`` as a float32/float64 ndarray (no copy when it already is one)."""
    arr = np.asarray(x)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: '{name}' must be a float32 or float64 array, got dtype {arr.dtype} "
            f"with shape {arr.shape}"
        )
    return arr


def result_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 if any argument is float64, else float32."""
    if any(a.dtype == np.float64 for a in arrays):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def check_out(out, shape: tuple, dtype: np.dtype, op: str, *inputs: np.ndarray) -> np.ndarray:
    """Validate a user-supplied ``out`` array: exact shape and dtype, writeable, and not
    overlapping any input (a kernel reads its inputs while it writes ``out``)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: 'out' must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{op}: 'out' has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: 'out' has dtype {out.dtype}, expected {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{op}: 'out' is read-only")
    for x in inputs:
        if np.shares_memory(out, x):
            raise ValueError(f"{op}: 'out' overlaps an input array; pass a separate array")
    return out


def kernel_for(dtype: np.dtype, f32, f64):
    """Pick the float32 or float64 variant of a Rust kernel."""
    return f32 if dtype == np.float32 else f64


def as_index_array(x, name: str, op: str) -> np.ndarray:
    """``x`` as an int64 ndarray; integer dtypes only (bool and float raise ``TypeError``)."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{op}: '{name}' must be an integer array, got dtype {arr.dtype} with shape {arr.shape}"
        )
    return arr.astype(np.int64, copy=False)


def normalize_axis(axis, ndim: int, op: str, name: str = "dim") -> int:
    """A possibly negative axis index as a non-negative one, with a clear error."""
    try:
        axis = int(axis)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: '{name}' must be an int, got {axis!r}") from None
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"{op}: '{name}'={axis} is out of range for an array of {ndim} dimensions")
    return axis % max(ndim, 1)


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction, op: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: 'reduction' must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


_RECYCLED_DTYPES = frozenset(("float32", "float64", "int64"))
# dtype -> its name, for the recycled dtypes (dtype.name is a slow Python property)
_RECYCLED_NAMES = {np.dtype(n): n for n in _RECYCLED_DTYPES}
_RECYCLE_MIN_BYTES = 1 << 20  # smaller arrays: plain np.empty (the Rust call costs ~3 us)


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array for a kernel to fill (``np.empty`` semantics).

    Large float32/float64/int64 outputs (>= 1 MiB) reuse the memory of dropped ones (see
    ``oxinet._core.empty``): a fresh large array otherwise pays one page fault per page.
    """
    dtype = np.dtype(dtype)
    n = dtype.itemsize
    for d in shape:
        n *= d
    name = _RECYCLED_NAMES.get(dtype) if n >= _RECYCLE_MIN_BYTES else None
    if name is None:
        return np.empty(shape, dtype)
    from oxinet import _core

    return _core.empty(tuple(int(d) for d in shape), name)
