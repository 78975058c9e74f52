"""Pairwise IoU between two sets of (x1, y1, x2, y2) boxes, for the tracker's cost matrix.

Computed by the detection kernel ``oxinet.ops.box_iou`` (one fused Rust pass,
torchvision.ops.box_iou semantics); the NaN it gives for two zero-area boxes becomes 0
here, so cost matrices stay finite.
"""

from __future__ import annotations

import numpy as np

from oxinet.ops import box_iou


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): (N, M) float64."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    iou = box_iou(a, b)
    return np.nan_to_num(iou, nan=0.0, copy=False)
