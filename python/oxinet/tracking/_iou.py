"""Pairwise IoU between two sets of (x1, y1, x2, y2) boxes, for the tracker's cost matrix.

``iou_matrix`` uses ``oxinet.ops.box_iou`` (the detection kernels, torchvision.ops.box_iou
semantics) when this build has it, and otherwise the small NumPy formula below.
"""

from __future__ import annotations

import numpy as np

import oxinet.ops as _ops


def _box_iou_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) -> (N, M) IoU in float64; 0 where the union is empty."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): (N, M) float64."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    box_iou = getattr(_ops, "box_iou", None)
    if box_iou is not None:
        return np.asarray(box_iou(a, b), np.float64)
    return _box_iou_numpy(a, b)
