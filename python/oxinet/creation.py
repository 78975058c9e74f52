"""Tensor factories: ``tensor``, ``zeros``, ``ones``, ``randn``, ``arange``, ...

Dtype rule (PyTorch's, with float32 as the default floating dtype): Python floats and
float64 NumPy data become float32 unless ``dtype`` says otherwise; Python ints become
int64; bools stay bool; float32 stays float32. Random factories draw from oxinet's shared
generator (:func:`oxinet.manual_seed`).
"""

from __future__ import annotations

import numpy as np

from oxinet.random import generator
from oxinet.tensor import Tensor, _resolve_dtype, _to_array, get_default_dtype


def _shape(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        shape = tuple(int(s) for s in size)
    except TypeError:
        raise TypeError(f"{op}: 'size' must be ints, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: 'size' must be non-negative, got {shape}")
    return shape


def _float_dtype(dtype, op):
    d = _resolve_dtype(dtype, op=op)
    return get_default_dtype() if d is None else d


def _finish(arr, requires_grad):
    t = Tensor(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new Tensor holding a copy of ``data`` (nested lists, numbers, arrays or Tensors)."""
    arr = _to_array(data, _resolve_dtype(dtype), copy=True)
    return _finish(arr, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """A Tensor over ``data`` without a copy when possible: Tensors are returned as they are
    and NumPy arrays are shared with their dtype kept (as ``torch.as_tensor``); other data
    and dtype changes follow :func:`tensor`."""
    d = _resolve_dtype(dtype)
    if isinstance(data, Tensor) and (d is None or d == data.dtype):
        return data
    if isinstance(data, np.ndarray) and (d is None or d == data.dtype):
        return Tensor(data)
    return Tensor(_to_array(data, d))


def from_numpy(array: np.ndarray):
    """A Tensor sharing ``array``'s memory and keeping its dtype."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def zeros(*size, dtype=None, requires_grad=False, device=None):
    return _finish(np.zeros(_shape(size, "zeros"), _float_dtype(dtype, "zeros")), requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):
    return _finish(np.ones(_shape(size, "ones"), _float_dtype(dtype, "ones")), requires_grad)


def empty(*size, dtype=None, requires_grad=False, device=None):
    return _finish(np.empty(_shape(size, "empty"), _float_dtype(dtype, "empty")), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = np.bool_
        elif isinstance(fill_value, int):
            dtype = np.int64
    shape = _shape((size,) if not isinstance(size, (tuple, list)) else (tuple(size),), "full")
    return _finish(np.full(shape, fill_value, _float_dtype(dtype, "full")), requires_grad)


def _like(x, dtype):
    d = _resolve_dtype(dtype, op="like")
    return x.shape, (x.dtype if d is None else d)


def zeros_like(input, dtype=None, requires_grad=False):
    shape, d = _like(input, dtype)
    return _finish(np.zeros(shape, d), requires_grad)


def ones_like(input, dtype=None, requires_grad=False):
    shape, d = _like(input, dtype)
    return _finish(np.ones(shape, d), requires_grad)


def full_like(input, fill_value, dtype=None, requires_grad=False):
    shape, d = _like(input, dtype)
    return _finish(np.full(shape, fill_value, d), requires_grad)


def empty_like(input, dtype=None, requires_grad=False):
    shape, d = _like(input, dtype)
    return _finish(np.empty(shape, d), requires_grad)


def randn(*size, dtype=None, requires_grad=False, device=None):
    """Standard normal samples from oxinet's generator."""
    d = _float_dtype(dtype, "randn")
    return _finish(generator().standard_normal(_shape(size, "randn"), dtype=d), requires_grad)


def rand(*size, dtype=None, requires_grad=False, device=None):
    """Uniform samples on [0, 1) from oxinet's generator."""
    d = _float_dtype(dtype, "rand")
    return _finish(generator().random(_shape(size, "rand"), dtype=d), requires_grad)


def randn_like(input, dtype=None, requires_grad=False):
    return randn(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def rand_like(input, dtype=None, requires_grad=False):
    return rand(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def randint(low, high=None, size=None, dtype=None):
    """Integers in [low, high) (or [0, low) when ``high`` is omitted), int64 by default."""
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint: 'size' is required")
    d = _resolve_dtype(dtype, op="randint") or np.dtype(np.int64)
    return Tensor(generator().integers(low, high, size=_shape((size,), "randint")).astype(d))


def randperm(n, dtype=None):
    d = _resolve_dtype(dtype, op="randperm") or np.dtype(np.int64)
    return Tensor(generator().permutation(int(n)).astype(d))


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Values in [start, end) spaced by ``step``: int64 for int arguments, else float32."""
    if end is None:
        start, end = 0, start
    d = _resolve_dtype(dtype, op="arange")
    if d is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        d = np.dtype(np.int64) if ints else get_default_dtype()
    return _finish(np.arange(start, end, step).astype(d), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return _finish(np.linspace(start, end, int(steps)).astype(_float_dtype(dtype, "linspace")), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _finish(np.eye(int(n), None if m is None else int(m), dtype=_float_dtype(dtype, "eye")), requires_grad)
