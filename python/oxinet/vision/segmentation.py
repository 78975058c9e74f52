"""Segmentation metrics (course F43) on integer label maps.

pixel accuracy = (TP + TN) / all pixels; per class c: IoU (Jaccard) = TP / (TP + FP + FN),
Dice = 2 TP / (2 TP + FP + FN). Classes absent from both prediction and target get NaN
(excluded from the means).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pixel_accuracy", "segmentation_confusion", "iou_per_class", "dice_per_class", "mean_iou", "mean_dice"]


def _labels(pred, target, who):
    p, t = np.asarray(pred), np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"{who}: 'pred' has shape {p.shape} but 'target' has shape {t.shape}")
    for name, a in (("pred", p), ("target", t)):
        if a.dtype.kind not in "iub":
            raise TypeError(f"{who}: '{name}' must hold integer class labels, got dtype {a.dtype}")
    return p.astype(np.int64).ravel(), t.astype(np.int64).ravel()


def segmentation_confusion(pred, target, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = target class, columns = predicted class."""
    p, t = _labels(pred, target, "segmentation_confusion")
    if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= num_classes):
        raise ValueError(f"segmentation_confusion: labels must be in [0, {num_classes}) ('num_classes')")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def pixel_accuracy(pred, target) -> float:
    p, t = _labels(pred, target, "pixel_accuracy")
    return float((p == t).mean()) if p.size else float("nan")


def _tp_fp_fn(pred, target, num_classes):
    cm = segmentation_confusion(pred, target, num_classes).astype(np.float64)
    tp = np.diag(cm)
    return tp, cm.sum(0) - tp, cm.sum(1) - tp


def iou_per_class(pred, target, num_classes: int) -> np.ndarray:
    tp, fp, fn = _tp_fp_fn(pred, target, num_classes)
    den = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, tp / den, np.nan)


def dice_per_class(pred, target, num_classes: int) -> np.ndarray:
    tp, fp, fn = _tp_fp_fn(pred, target, num_classes)
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / den, np.nan)


def mean_iou(pred, target, num_classes: int, ignore_background: bool = False) -> float:
    v = iou_per_class(pred, target, num_classes)[1 if ignore_background else 0:]
    return float(np.nanmean(v)) if (~np.isnan(v)).any() else float("nan")


def mean_dice(pred, target, num_classes: int, ignore_background: bool = False) -> float:
    v = dice_per_class(pred, target, num_classes)[1 if ignore_background else 0:]
    return float(np.nanmean(v)) if (~np.isnan(v)).any() else float("nan")
