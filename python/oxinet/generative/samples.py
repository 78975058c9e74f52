"""Toy data for generators, a distance between sample sets, and an image grid."""

from __future__ import annotations

import numpy as np

from oxinet import ops


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.1, seed=None) -> np.ndarray:
    """n points (float32, (n, 2)) from ``modes`` Gaussians evenly spaced on a circle."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, modes, n)
    angle = 2 * np.pi * k / modes
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype(np.float32)


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * ops.matmul(a, b.T)
    return float(np.sqrt(np.maximum(sq, 0.0)).mean())


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| between two sample sets (n, d) and
    (m, d): 0 when the distributions agree, positive otherwise."""
    return 2 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y)


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W) or (N, 1, H, W) images into one (rows*(H+pad), cols*(W+pad)) array."""
    imgs = np.asarray(images)
    if imgs.ndim == 4:
        imgs = imgs[:, 0]
    n, h, w = imgs.shape
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), imgs.min(initial=0), imgs.dtype)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = imgs[i]
    return out
