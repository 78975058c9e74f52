"""Thread count and CPU-feature queries for oxinet's kernels."""

from __future__ import annotations

import operator

from oxinet import _core


def get_num_threads() -> int:
    """Number of threads oxinet's kernels use.

    Defaults to ``OXINET_NUM_THREADS`` when set, else the number of available cores.
    """
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (``n >= 1``) in oxinet's kernels from now on.

    Results do not depend on the thread count.
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(n)


def simd_level() -> str:
    """The SIMD instruction set oxinet's kernels use on this CPU:
    ``'avx512'``, ``'avx2+fma'``, ``'neon'`` or ``'portable'``."""
    return _core.simd_level()


def release_buffers() -> int:
    """Free the memory oxinet keeps for reuse by large kernel outputs; returns the bytes freed.

    Outputs of 1 MiB or more reuse the memory of arrays that were dropped, up to
    ``OXINET_BUFFER_CACHE_MB`` MiB (default 512; 0 turns the reuse off), like the caching
    allocators of PyTorch and ONNX Runtime. Call this to hand that memory back to the OS.
    """
    return _core.release_buffers()


def cached_buffer_bytes() -> int:
    """Bytes currently held for reuse by large kernel outputs (see :func:`release_buffers`)."""
    return _core.cached_buffer_bytes()
