"""Small shared helpers for the sequence examples (not part of the library)."""

from __future__ import annotations

import time

import numpy as np


def log(verbose, *args):
    if verbose:
        print(*args, flush=True)


def batches(n, batch_size, rng):
    perm = rng.permutation(n)
    for s in range(0, n, batch_size):
        yield perm[s:s + batch_size]


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def softmax_np(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
