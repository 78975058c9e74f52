"""Action-selection helpers over action values, and exploration schedules.

``q`` is (A,) for one state or (N, A) for a batch; random draws come from the
``numpy.random.Generator`` passed in (seeded by the caller), so runs are repeatable.
"""

from __future__ import annotations

import math

import numpy as np


def _q(q, op):
    q = np.asarray(q, np.float64)
    if q.ndim not in (1, 2) or q.shape[-1] == 0:
        raise ValueError(f"{op}: 'q' must have shape (A,) or (N, A) with A >= 1, got {q.shape}")
    return q


def greedy_action(q, rng: np.random.Generator | None = None):
    """argmax over actions; ties go to the lowest index, or to a uniformly random tied action
    when ``rng`` is given. Returns an int (or (N,) ints)."""
    q = _q(q, "greedy_action")
    if rng is None:
        a = np.argmax(q, axis=-1)
    else:
        best = q == q.max(axis=-1, keepdims=True)
        noise = rng.random(q.shape)
        a = np.argmax(np.where(best, noise, -1.0), axis=-1)
    return int(a) if q.ndim == 1 else a


def epsilon_greedy(q, epsilon: float, rng: np.random.Generator):
    """With probability epsilon a uniformly random action, else a greedy one (random ties)."""
    q = _q(q, "epsilon_greedy")
    eps = float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"epsilon_greedy: 'epsilon' must be in [0, 1], got {epsilon}")
    n_act = q.shape[-1]
    greedy = greedy_action(q, rng)
    if q.ndim == 1:
        return int(rng.integers(n_act)) if rng.random() < eps else greedy
    explore = rng.random(q.shape[0]) < eps
    return np.where(explore, rng.integers(n_act, size=q.shape[0]), greedy)


def softmax_probs(q, temperature: float = 1.0) -> np.ndarray:
    """Boltzmann probabilities ``exp(q / T) / sum exp(q / T)`` (computed stably)."""
    q = _q(q, "softmax_probs")
    t = float(temperature)
    if not t > 0:
        raise ValueError(f"softmax_probs: 'temperature' must be > 0, got {temperature}")
    z = q / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_policy(q, temperature: float, rng: np.random.Generator):
    """Sample an action from ``softmax_probs(q, temperature)``."""
    p = softmax_probs(q, temperature)
    if p.ndim == 1:
        return int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), p.size - 1))
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, axis=1) <= u).sum(axis=1), p.shape[1] - 1)


class EpsilonSchedule:
    """epsilon as a function of the step (or episode) index t.

    ``kind="linear"``: from ``start`` to ``end`` over ``decay_steps``, then ``end``.
    ``kind="exponential"``: ``end + (start - end) * exp(-t / decay_steps)``.
    """

    def __init__(self, start: float = 1.0, end: float = 0.05, decay_steps: int = 1000,
                 kind: str = "linear"):
        for name, v in (("start", start), ("end", end)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"EpsilonSchedule: '{name}' must be in [0, 1], got {v}")
        if not float(decay_steps) > 0:
            raise ValueError(f"EpsilonSchedule: 'decay_steps' must be > 0, got {decay_steps}")
        if kind not in ("linear", "exponential"):
            raise ValueError(f"EpsilonSchedule: 'kind' must be 'linear' or 'exponential', got {kind!r}")
        self.start, self.end = float(start), float(end)
        self.decay_steps = float(decay_steps)
        self.kind = kind

    def __call__(self, t: int) -> float:
        if self.kind == "linear":
            if t >= self.decay_steps:
                return self.end
            frac = max(0.0, t / self.decay_steps)
            return self.start + frac * (self.end - self.start)
        return self.end + (self.start - self.end) * math.exp(-t / self.decay_steps)
