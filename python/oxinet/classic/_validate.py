"""Argument checks shared by the classical estimators.

Estimators here solve small dense problems, so they compute in float64 (solves and
long gradient-descent runs are better conditioned there); real-valued inputs of any
numeric dtype are accepted, everything else raises ``TypeError`` naming the argument.
"""

from __future__ import annotations

import numpy as np

from oxinet.ops import matmul as _matmul


def real_array(x, name: str, op: str, ndim: int | tuple | None = None,
               dtype=np.float64) -> np.ndarray:
    """``x`` as a float array (float64 by default); rejects non-numeric dtypes and wrong ranks."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{op}: '{name}' must be a real numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{op}: '{name}' must be real, got complex dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{op}: '{name}' must be {want}, got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def label_array(y, name: str, op: str, n: int | None = None) -> np.ndarray:
    """1-D integer (or bool) labels of length ``n``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{op}: '{name}' must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and arr.size and np.all(np.isfinite(arr)) \
                and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        elif np.issubdtype(arr.dtype, np.floating) and arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{op}: '{name}' must hold integer class labels, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{op}: '{name}' has {arr.shape[0]} entries but X has {n} rows")
    return arr.astype(np.int64, copy=False)


def check_xy(X, y, op: str, y_ndim=(1,)) -> tuple[np.ndarray, np.ndarray]:
    """2-D design matrix and targets with matching first dimension (float64 both)."""
    X = real_array(X, "X", op, ndim=2)
    y = real_array(y, "y", op, ndim=y_ndim)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{op}: 'y' has {y.shape[0]} rows but 'X' has {X.shape[0]} (shape {X.shape})")
    if X.shape[0] == 0:
        raise ValueError(f"{op}: 'X' has no rows (shape {X.shape})")
    return X, y


def positive(value, name: str, op: str, allow_zero: bool = False) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{op}: '{name}' must be finite and {bound}, got {value!r}")
    return v


def positive_int(value, name: str, op: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: '{name}' must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{op}: '{name}' must be >= {minimum}, got {value}")
    return int(value)


def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product on oxinet's Rust GEMM (``oxinet.ops.matmul``)."""
    return _matmul(a, b)


def check_fitted(est, attr: str) -> None:
    if getattr(est, attr, None) is None:
        raise RuntimeError(f"{type(est).__name__}: call fit() before using the model")
