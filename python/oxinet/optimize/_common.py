"""Result type and argument checks shared by the optimisers (flat float64 vectors)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OptimizeResult:
    """Outcome of a minimiser.

    x: the final point (flat float64 vector); fun: f(x) (or 0.5 ||r(x)||^2 for least
    squares); grad_norm: ||grad f(x)||; n_iter: iterations taken; converged: whether a
    tolerance was met (else the iteration cap stopped it); message: why it stopped;
    history: f per iteration (first entry at x0).
    """
    x: np.ndarray
    fun: float
    grad_norm: float
    n_iter: int
    converged: bool
    message: str
    n_fev: int = 0
    history: list = field(default_factory=list)


def flat_vector(x, name: str, op: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{op}: '{name}' must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{op}: '{name}' must be a flat 1-D vector, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{op}: '{name}' is empty")
    return np.array(arr, dtype=np.float64)  # a private copy


def call_vector(fn, x, name: str, op: str, n: int) -> np.ndarray:
    v = np.asarray(fn(x), dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"{op}: '{name}' returned shape {v.shape}, expected ({n},)")
    return v


def check_callable(fn, name: str, op: str):
    if not callable(fn):
        raise TypeError(f"{op}: '{name}' must be callable, got {type(fn).__name__}")
    return fn


def check_positive(v, name: str, op: str, allow_zero: bool = False) -> float:
    v = float(v)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{op}: '{name}' must be {'>= 0' if allow_zero else '> 0'}, got {v}")
    return v


def check_int(v, name: str, op: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{op}: '{name}' must be an integer, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{op}: '{name}' must be >= {minimum}, got {v}")
    return int(v)
