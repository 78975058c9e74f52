"""A generated tracking scene: boxes moving at constant velocity with noisy detections.

Each object has a random size, a start position inside the image, a constant velocity
(bouncing off the image borders) and a lifetime ``[first_frame, last_frame]`` (some enter
late and some leave early when ``births=True``). Per frame, each visible object is
detected with probability ``1 - miss_prob`` as its true box plus Gaussian noise
(``noise_std`` pixels on every coordinate); a Poisson(``fp_rate``) number of false
positive boxes appear at random places; detections come in shuffled order. Everything is
drawn from one seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scene:
    gt_ids: list          # per frame: (k,) int64 object ids (1-based)
    gt_boxes: list        # per frame: (k, 4) float64 true boxes
    detections: list      # per frame: (d, 4) float64 detected boxes (true ones + false positives)
    det_is_fp: list       # per frame: (d,) bool, which detections are false positives
    width: float
    height: float

    @property
    def n_frames(self) -> int:
        return len(self.gt_ids)


def generate_scene(n_frames: int = 100, n_objects: int = 6, *, width: float = 640.0,
                   height: float = 480.0, size_range=(30.0, 70.0), speed_range=(1.0, 5.0),
                   noise_std: float = 1.5, miss_prob: float = 0.03, fp_rate: float = 0.3,
                   births: bool = True, seed: int | None = 0) -> Scene:
    """Generate a :class:`Scene` (see the module docstring)."""
    op = "generate_scene"
    for name, v in (("n_frames", n_frames), ("n_objects", n_objects)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{op}: '{name}' must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{op}: '{name}' must be >= 1, got {v}")
    if not 0.0 <= miss_prob <= 1.0:
        raise ValueError(f"{op}: 'miss_prob' must be in [0, 1], got {miss_prob}")
    if fp_rate < 0 or noise_std < 0:
        raise ValueError(f"{op}: 'fp_rate' and 'noise_std' must be >= 0, got {fp_rate}, {noise_std}")
    lo, hi = size_range
    if not 0 < lo <= hi < min(width, height) / 2:
        raise ValueError(f"{op}: 'size_range' must satisfy 0 < low <= high < min(width, height)/2, "
                         f"got {size_range}")
    rng = np.random.default_rng(seed)
    wh = rng.uniform(lo, hi, (n_objects, 2))
    pos = np.column_stack([rng.uniform(0, width - wh[:, 0]), rng.uniform(0, height - wh[:, 1])])
    ang = rng.uniform(0, 2 * np.pi, n_objects)
    spd = rng.uniform(*speed_range, n_objects)
    vel = np.column_stack([np.cos(ang), np.sin(ang)]) * spd[:, None]
    if births:
        first = np.where(rng.random(n_objects) < 0.5, 0, rng.integers(0, max(1, n_frames // 2), n_objects))
        last = np.where(rng.random(n_objects) < 0.5, n_frames - 1,
                        rng.integers(n_frames // 2, n_frames, n_objects))
        last = np.maximum(last, np.minimum(first + 10, n_frames - 1))
    else:
        first = np.zeros(n_objects, np.int64)
        last = np.full(n_objects, n_frames - 1)
    gt_ids, gt_boxes, dets, fps = [], [], [], []
    for t in range(n_frames):
        if t > 0:
            pos += vel
            for axis, limit in ((0, width), (1, height)):
                over = (pos[:, axis] < 0) | (pos[:, axis] + wh[:, axis] > limit)
                vel[over, axis] *= -1
                pos[:, axis] = np.clip(pos[:, axis], 0, limit - wh[:, axis])
        alive = (first <= t) & (t <= last)
        boxes = np.column_stack([pos, pos + wh])[alive]
        ids = np.flatnonzero(alive) + 1
        gt_ids.append(ids.astype(np.int64))
        gt_boxes.append(boxes.copy())
        detected = rng.random(boxes.shape[0]) >= miss_prob
        d = boxes[detected] + rng.normal(0, noise_std, (int(detected.sum()), 4))
        n_fp = rng.poisson(fp_rate)
        fw = rng.uniform(lo, hi, (n_fp, 2))
        fxy = np.column_stack([rng.uniform(0, width - fw[:, 0]), rng.uniform(0, height - fw[:, 1])])
        d = np.concatenate([d, np.column_stack([fxy, fxy + fw])])
        # keep every detection a valid box after the noise
        d[:, 2] = np.maximum(d[:, 2], d[:, 0] + 1)
        d[:, 3] = np.maximum(d[:, 3], d[:, 1] + 1)
        is_fp = np.concatenate([np.zeros(int(detected.sum()), bool), np.ones(n_fp, bool)])
        order = rng.permutation(d.shape[0])
        dets.append(d[order])
        fps.append(is_fp[order])
    return Scene(gt_ids, gt_boxes, dets, fps, float(width), float(height))
