"""Sampling novel sequences from a language model (INVENTORY F52): draw the next token
from the softmax, feed it back, stop at ``<EOS>`` or a length limit.

``temperature`` divides the logits (``-> 0`` is argmax, ``1`` the model's distribution,
larger flattens it); ``top_k`` keeps only the ``k`` most probable tokens. Randomness comes
from ``seed``: None draws from oxinet's shared generator (``oxinet.manual_seed``), an int
or a ``numpy.random.Generator`` gives a private, repeatable one.
"""

from __future__ import annotations

import numpy as np

from oxinet.data._rng import make_generator

__all__ = ["sample_next", "sample_sequence"]


def _np(x):
    from oxinet.tensor import Tensor

    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def sample_next(logits, temperature: float = 1.0, top_k=None, seed=None, forbid=None) -> np.ndarray:
    """Draw one token per row of ``logits`` ``(N, V)`` (or ``(V,)`` -> a 0-d result).

    ``logits`` may be unnormalised scores or log-probabilities (same result).
    ``temperature == 0`` returns the argmax (no randomness); ``top_k`` keeps the ``k``
    largest logits (ties at the boundary kept by index order); ``forbid`` is a token index
    (or list) never drawn, e.g. ``<unk>`` as the course suggests. Returns int64.
    """
    who = "sample_next"
    x = _np(logits).astype(np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"{who}: 'logits' must be (V,) or (N, V), got shape {x.shape}")
    if temperature < 0:
        raise ValueError(f"{who}: 'temperature' must be >= 0, got {temperature}")
    single = x.ndim == 1
    x = np.atleast_2d(x).copy()
    n, v = x.shape
    if forbid is not None:
        x[:, np.atleast_1d(np.asarray(forbid, np.int64))] = -np.inf
    if top_k is not None:
        k = int(top_k)
        if not 1 <= k:
            raise ValueError(f"{who}: 'top_k' must be >= 1, got {top_k}")
        if k < v:
            idx = np.argsort(-x, axis=1, kind="stable")[:, k:]
            np.put_along_axis(x, idx, -np.inf, axis=1)
    if temperature == 0:
        out = x.argmax(axis=1)
    else:
        z = x / temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        rng = make_generator(seed, who)
        u = rng.random(n)[:, None]
        cdf = np.cumsum(p, axis=1)
        out = np.minimum((cdf < u * cdf[:, -1:]).sum(axis=1), v - 1)
        # never land on a zero-probability token because of rounding
        bad = p[np.arange(n), out] == 0
        if bad.any():
            out[bad] = p[bad].argmax(axis=1)
    out = out.astype(np.int64)
    return out[0] if single else out


def sample_sequence(step, state, bos, eos=None, max_len: int = 50, temperature: float = 1.0, top_k=None,
                    seed=None, forbid=None):
    """Generate token sequences by feeding samples back into ``step``.

    ``step(state, tokens) -> (logits_or_log_probs (N, V), new_state)`` as in
    :mod:`oxinet.text.decoding`; ``bos`` is an int or an int array ``(N,)`` (N sequences
    at once). Each sequence stops after its ``eos`` (kept in the output) or after
    ``max_len`` tokens. Returns a list of token lists (one list for an int ``bos``).
    """
    who = "sample_sequence"
    if max_len < 1:
        raise ValueError(f"{who}: 'max_len' must be >= 1, got {max_len}")
    rng = make_generator(seed, who)
    single = np.ndim(bos) == 0
    tokens = np.atleast_1d(np.asarray(bos, np.int64))
    n = tokens.shape[0]
    outs = [[] for _ in range(n)]
    done = np.zeros(n, bool)
    for _ in range(max_len):
        logits, state = step(state, tokens)
        nxt = sample_next(logits, temperature, top_k, rng, forbid)
        for i in np.flatnonzero(~done).tolist():
            outs[i].append(int(nxt[i]))
        if eos is not None:
            done |= nxt == eos
            if done.all():
                break
        tokens = nxt
    return outs[0] if single else outs
