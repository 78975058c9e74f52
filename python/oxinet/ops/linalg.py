"""Matrix products on the Rust GEMM (the ``gemm`` crate's AVX-512/AVX2 kernels).

``matmul`` follows ``numpy.matmul``; ``gemm`` follows BLAS (``alpha * op(a) @ op(b) +
beta * c``). Both accept any strides (transposed views, slices) without copying.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, check_out, empty, kernel_for, result_dtype

__all__ = [
    "matmul",
    "gemm",
]


def _gemm3(a3: np.ndarray, b3: np.ndarray, c3: np.ndarray, alpha: float, beta: float) -> None:
    """c3[i] = alpha * a3[i] @ b3[i] + beta * c3[i] (3-D arrays of one float dtype)."""
    kernel_for(c3.dtype, _core.gemm_f32, _core.gemm_f64)(a3, b3, c3, alpha, beta)


_FAST_DTYPES = {np.dtype(np.float32): _core.gemm_f32, np.dtype(np.float64): _core.gemm_f64}


def _as_batch3(x: np.ndarray, batch: tuple, rows: int, cols: int) -> np.ndarray:
    """Broadcast ``x`` to ``batch + (rows, cols)`` and view it as 3-D; broadcasting over a
    single batch axis stays a zero-stride view, several may need a copy."""
    full = np.broadcast_to(x, batch + (rows, cols))
    return full.reshape((math.prod(batch), rows, cols))


def matmul(a, b, *, out: np.ndarray | None = None) -> np.ndarray:
    """Matrix product with ``numpy.matmul`` semantics.

    a: (..., M, K) or (K,); b: (..., K, N) or (K,); float32 or float64 (mixed promotes to
    float64). Batch dimensions broadcast. A 1-D ``a`` is a row vector and a 1-D ``b`` a
    column vector; their added dimension is removed from the result.

    Returns an array of shape ``broadcast(a.batch, b.batch) + (M, N)`` minus vector dims.
    """
    if (
        out is None
        and type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.ndim == 2
        and b.ndim == 2
        and a.dtype == b.dtype
        and a.dtype in _FAST_DTYPES
        and a.shape[1] == b.shape[0]
    ):
        # The common 2-D case without the general path's broadcasting bookkeeping.
        m, n = a.shape[0], b.shape[1]
        # large results in recycled memory (no page faults on first write); small ones
        # skip the extra call
        c = np.empty((m, n), a.dtype) if m * n < 1 << 18 else empty((m, n), a.dtype)
        if c.size:
            _FAST_DTYPES[a.dtype](a[np.newaxis], b[np.newaxis], c[np.newaxis], 1.0, 0.0)
        return c
    op = "matmul"
    a = as_float_array(a, "a", op)
    b = as_float_array(b, "b", op)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"{op}: operands must have at least 1 dimension, got shapes a={a.shape}, b={b.shape}"
        )
    dtype = result_dtype(a, b)
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    m, k = a2.shape[-2:]
    kb, n = b2.shape[-2:]
    if k != kb:
        raise ValueError(
            f"{op}: inner dimensions differ: a has shape {a.shape} (K={k}), "
            f"b has shape {b.shape} (K={kb})"
        )
    try:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: batch dimensions do not broadcast: a has shape {a.shape}, b has shape {b.shape}"
        ) from None
    full_shape = batch + (m, n)
    final_shape = full_shape
    if a.ndim == 1:
        final_shape = final_shape[:-2] + final_shape[-1:]
    if b.ndim == 1:
        final_shape = final_shape[:-1]
    if out is not None:
        check_out(out, final_shape, dtype, op, a, b)
    direct = out is not None and out.flags.c_contiguous
    result = out.reshape(full_shape) if direct else empty(full_shape, dtype)
    if result.size:
        nb = math.prod(batch)
        if b2.ndim == 2 and a2.ndim > 2:
            # (..., M, K) @ (K, N): fold the batch into M and run one large product.
            a3 = a2.reshape((1, nb * m, k))
            c3 = result.reshape((1, nb * m, n))
            _gemm3(a3, b2[np.newaxis], c3, 1.0, 0.0)
        else:
            c3 = result.reshape((nb, m, n))
            _gemm3(_as_batch3(a2, batch, m, k), _as_batch3(b2, batch, k, n), c3, 1.0, 0.0)
    if out is None:
        return result.reshape(final_shape)
    if not direct:
        out[...] = result.reshape(final_shape)
    return out


def gemm(
    a,
    b,
    c=None,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
    trans_a: bool = False,
    trans_b: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """General matrix multiply with BLAS semantics: ``alpha * op(a) @ op(b) + beta * c``.

    a: (M, K), or (K, M) with ``trans_a``; b: (K, N), or (N, K) with ``trans_b``;
    c: anything that broadcasts to (M, N) (a bias row, a scalar), used only when
    ``beta != 0`` (so NaN in ``c`` does not leak through ``beta=0``, as in BLAS).
    ``out`` (M, N) receives the result; passing ``out=c`` updates ``c`` in place.
    Returns the (M, N) result, float32 or float64 as promoted from the inputs.
    """
    op = "gemm"
    a = as_float_array(a, "a", op)
    b = as_float_array(b, "b", op)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 2:
            raise ValueError(f"{op}: '{name}' must be 2-D, got shape {x.shape}")
    c_arr = None if c is None else as_float_array(c, "c", op)
    dtype = result_dtype(*(x for x in (a, b, c_arr) if x is not None))
    a_op = a.T if trans_a else a
    b_op = b.T if trans_b else b
    m, k = a_op.shape
    kb, n = b_op.shape
    if k != kb:
        raise ValueError(
            f"{op}: inner dimensions differ: op(a) has shape {a_op.shape} (a {a.shape}, "
            f"trans_a={trans_a}), op(b) has shape {b_op.shape} (b {b.shape}, trans_b={trans_b})"
        )
    alpha = float(alpha)
    beta = float(beta)
    if c_arr is not None:
        try:
            np.broadcast_shapes(c_arr.shape, (m, n))
            if np.broadcast_shapes(c_arr.shape, (m, n)) != (m, n):
                raise ValueError
        except ValueError:
            raise ValueError(f"{op}: 'c' has shape {c_arr.shape}, which does not broadcast to ({m}, {n})") from None
    in_place = out is not None and c_arr is not None and out is c
    if out is not None:
        check_out(out, (m, n), dtype, op, a, b)
        if c_arr is not None and not in_place and np.shares_memory(out, c_arr):
            raise ValueError(f"{op}: 'out' overlaps 'c'; pass out=c to update c in place")
    else:
        out = np.empty((m, n), dtype)
    use_c = c_arr is not None and beta != 0.0
    if use_c and not in_place:
        out[...] = c_arr
    a_op = a_op.astype(dtype, copy=False)
    b_op = b_op.astype(dtype, copy=False)
    if out.size:
        _gemm3(a_op[np.newaxis], b_op[np.newaxis], out[np.newaxis], alpha, beta if use_c else 0.0)
    return out
