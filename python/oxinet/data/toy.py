"""Seeded two-dimensional toy classification sets: the course's planar "flower", moons and
spirals. Each returns ``(X, y)``: X float32 ``(n_samples, 2)`` (samples first; use ``X.T``
for the course's ``(n_x, m)`` column layout) and y int64 ``(n_samples,)``."""

from __future__ import annotations

import operator

import numpy as np

from oxinet.data._rng import make_generator

__all__ = ["make_flower", "make_moons", "make_spirals"]


def _count(n, name: str, who: str, minimum: int = 1) -> int:
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{who}: '{name}' must be an int, got {type(n).__name__}") from None
    if n < minimum:
        raise ValueError(f"{who}: '{name}' must be >= {minimum}, got {n}")
    return n


def _noise(v, who: str) -> float:
    v = float(v)
    if v < 0:
        raise ValueError(f"{who}: 'noise' must be >= 0, got {v}")
    return v


def _finish(xs, ys, shuffle: bool, rng) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    if shuffle:
        p = rng.permutation(len(y))
        X, y = X[p], y[p]
    return np.ascontiguousarray(X), y


def make_flower(
    n_samples: int = 400, radius: float = 4.0, noise: float = 0.2, shuffle: bool = True, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """The planar "flower" from the course's one-hidden-layer exercise (two classes of
    interleaved petals that no straight line separates).

    Generating process, class ``j`` in {0, 1} with half the points each:
    ``t`` runs evenly over ``[3.12 j, 3.12 (j+1)]`` (the exercise's constant, just under pi)
    plus ``N(0, noise^2)`` jitter,
    ``r = radius * sin(4 t) + N(0, noise^2)``, and the point is ``(r sin t, r cos t)``.
    With ``radius=4`` (the course's ``a = 4``) the petals reach about 4 units out.
    """
    who = "make_flower"
    n = _count(n_samples, "n_samples", who, 2)
    noise = _noise(noise, who)
    rng = make_generator(seed, who)
    xs, ys = [], []
    for j, m in enumerate((n // 2, n - n // 2)):
        t = np.linspace(j * 3.12, (j + 1) * 3.12, m) + rng.standard_normal(m) * noise
        r = radius * np.sin(4.0 * t) + rng.standard_normal(m) * noise
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(m, j))
    return _finish(xs, ys, shuffle, rng)


def make_moons(
    n_samples: int = 200, noise: float = 0.1, shuffle: bool = True, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles.

    Generating process: class 0 has angles ``t ~ U[0, pi]`` and points ``(cos t, sin t)``;
    class 1 has ``(1 - cos t, 0.5 - sin t)``; every coordinate gets ``N(0, noise^2)`` added.
    Class sizes are ``n_samples // 2`` and the rest.
    """
    who = "make_moons"
    n = _count(n_samples, "n_samples", who, 2)
    noise = _noise(noise, who)
    rng = make_generator(seed, who)
    m0, m1 = n // 2, n - n // 2
    t0 = rng.uniform(0.0, np.pi, m0)
    t1 = rng.uniform(0.0, np.pi, m1)
    a = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    b = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    a += rng.standard_normal(a.shape) * noise
    b += rng.standard_normal(b.shape) * noise
    return _finish([a, b], [np.zeros(m0), np.ones(m1)], shuffle, rng)


def make_spirals(
    n_samples: int = 300,
    n_classes: int = 3,
    turns: float = 0.75,
    noise: float = 0.2,
    shuffle: bool = True,
    seed=0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_classes`` interleaved spiral arms (equal sizes up to one sample).

    Generating process for arm ``k``: radii ``r`` run evenly over ``[0, 1]``, the angle is
    ``2 pi (k / n_classes + turns * r) + N(0, noise^2)`` and the point is
    ``(r cos angle, r sin angle)``. Larger ``turns`` winds the arms more.
    """
    who = "make_spirals"
    n = _count(n_samples, "n_samples", who, 1)
    k = _count(n_classes, "n_classes", who, 1)
    if n < k:
        raise ValueError(f"{who}: 'n_samples' ({n}) must be >= 'n_classes' ({k})")
    noise = _noise(noise, who)
    rng = make_generator(seed, who)
    sizes = [n // k + (1 if c < n % k else 0) for c in range(k)]
    xs, ys = [], []
    for c, m in enumerate(sizes):
        r = np.linspace(0.0, 1.0, m)
        ang = 2 * np.pi * (c / k + turns * r) + rng.standard_normal(m) * noise
        xs.append(np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1))
        ys.append(np.full(m, c))
    return _finish(xs, ys, shuffle, rng)
