"""YOLO (v2-style, as in the course's car-detection exercise): decoding a grid output,
score filtering, per-class non-max suppression, the whole pipeline as one call, and the
training-target builder.

Grid output layout: ``(N, S_h, S_w, A, 5 + C)``; for each cell and anchor the last axis
holds ``(t_x, t_y, t_w, t_h, t_o, class logits...)``. Decoding (course INVENTORY F40-F41):

    b_x = (sigmoid(t_x) + c_x) / S_w        b_w = anchor_w * exp(t_w) / S_w
    b_y = (sigmoid(t_y) + c_y) / S_h        b_h = anchor_h * exp(t_h) / S_h
    confidence p_c = sigmoid(t_o)           class probabilities = softmax(logits)

with ``(c_x, c_y)`` the cell's column and row and anchors ``(w, h)`` in grid-cell units.
Boxes come out as corners ``(x1, y1, x2, y2)``, as fractions of the image, or in pixels
when ``image_size = (height, width)`` is given.

Filtering (F39): box score = p_c * class probability, class = argmax; boxes whose best
score is <= ``score_threshold`` are discarded (the course's "discard p_c <= 0.6"). Then
NMS per class (a box is suppressed when IoU > ``iou_threshold`` with a kept box of its
class) and the top ``max_boxes`` by score.
"""

from __future__ import annotations

import operator

import numpy as np

from oxinet.ops import boxes as B
from oxinet.ops._checks import as_float_array


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _anchors(anchors, a: int | None, op: str, dtype) -> np.ndarray:
    an = as_float_array(anchors, "anchors", op)
    if an.ndim != 2 or an.shape[1] != 2 or (a is not None and an.shape[0] != a):
        want = f"({a}, 2)" if a is not None else "(A, 2)"
        raise ValueError(f"{op}: 'anchors' must have shape {want} (width, height in grid cells), got {an.shape}")
    return an.astype(dtype, copy=False)


def yolo_decode(output, anchors, *, image_size=None, class_activation: str = "softmax"):
    """Decode a YOLO grid output.

    output: (N, S_h, S_w, A, 5 + C) raw network output; anchors: (A, 2) anchor
    (width, height) in grid cells; image_size: optional (height, width) to get pixels;
    class_activation: ``'softmax'`` (YOLOv2, the course) or ``'sigmoid'`` (YOLOv3).

    Returns ``(boxes, confidence, class_probs)``: (N, S_h, S_w, A, 4) xyxy,
    (N, S_h, S_w, A) and (N, S_h, S_w, A, C), of the output's dtype.
    """
    op = "yolo_decode"
    y = as_float_array(output, "output", op)
    if y.ndim != 5 or y.shape[-1] < 5:
        raise ValueError(f"{op}: 'output' must have shape (N, S_h, S_w, A, 5 + C), got {y.shape}")
    if class_activation not in ("softmax", "sigmoid"):
        raise ValueError(f"{op}: 'class_activation' must be 'softmax' or 'sigmoid', got {class_activation!r}")
    n, sh, sw, a, _ = y.shape
    an = _anchors(anchors, a, op, y.dtype)
    cx = np.arange(sw, dtype=y.dtype)[None, None, :, None]
    cy = np.arange(sh, dtype=y.dtype)[None, :, None, None]
    bx = (_sigmoid(y[..., 0]) + cx) / sw
    by = (_sigmoid(y[..., 1]) + cy) / sh
    with np.errstate(over="ignore"):
        bw = an[:, 0] * np.exp(y[..., 2]) / sw
        bh = an[:, 1] * np.exp(y[..., 3]) / sh
    boxes = np.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], axis=-1)
    if image_size is not None:
        h, w = _image_size(image_size, op)
        boxes *= np.array([w, h, w, h], dtype=y.dtype)
    conf = _sigmoid(y[..., 4])
    logits = y[..., 5:]
    probs = _softmax(logits) if class_activation == "softmax" else _sigmoid(logits)
    return boxes.astype(y.dtype, copy=False), conf.astype(y.dtype, copy=False), probs.astype(y.dtype, copy=False)


def _image_size(image_size, op: str):
    try:
        h, w = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: 'image_size' must be (height, width), got {image_size!r}") from None
    return h, w


def yolo_filter_boxes(boxes, confidence, class_probs, score_threshold: float = 0.6):
    """Score filtering: box score = confidence * class probability; keep each box's best
    class when its score is > ``score_threshold``.

    boxes: (..., 4); confidence: (...) or (..., 1); class_probs: (..., C).
    Returns ``(boxes (K, 4), scores (K,), classes (K,) int64)`` in the input order.
    """
    op = "yolo_filter_boxes"
    b = B._boxes(boxes, "boxes", op, batch=True)
    c = as_float_array(confidence, "confidence", op)
    p = as_float_array(class_probs, "class_probs", op)
    lead = b.shape[:-1]
    if c.shape == lead + (1,):
        c = c[..., 0]
    if c.shape != lead:
        raise ValueError(f"{op}: 'confidence' must have shape {lead} to match 'boxes' {b.shape}, got {c.shape}")
    if p.shape[:-1] != lead or p.ndim != b.ndim or p.shape[-1] == 0:
        raise ValueError(f"{op}: 'class_probs' must have shape {lead + ('C',)} to match 'boxes' {b.shape}, got {p.shape}")
    thr = B._threshold(score_threshold, "score_threshold", op, low=None)
    scores = c[..., None] * p
    cls = scores.argmax(axis=-1)
    best = np.take_along_axis(scores, cls[..., None], axis=-1)[..., 0]
    mask = best > thr
    return b[mask], best[mask], cls[mask].astype(np.int64)


def yolo_non_max_suppression(boxes, scores, classes, max_boxes: int = 10, iou_threshold: float = 0.5,
                             *, class_agnostic: bool = False):
    """NMS on filtered boxes, per class unless ``class_agnostic``; the top ``max_boxes``.
    Returns ``(boxes, scores, classes)`` sorted by decreasing score."""
    op = "yolo_non_max_suppression"
    cls = np.asarray(classes)
    if cls.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'classes' must be an integer array, got dtype {cls.dtype}")
    mb = B._count(max_boxes, "max_boxes", op)
    if class_agnostic:
        keep = B.nms(boxes, scores, iou_threshold, max_output=mb)
    else:
        keep = B.batched_nms(boxes, scores, cls, iou_threshold, max_output=mb)
    b = B._boxes(boxes, "boxes", op)
    return b[keep], np.asarray(scores)[keep], cls[keep].astype(np.int64)


def yolo_eval(output, anchors, *, image_size=None, score_threshold: float = 0.6, iou_threshold: float = 0.5,
              max_boxes: int = 10, class_agnostic: bool = False, class_activation: str = "softmax"):
    """The course's YOLO pipeline in one call: decode -> score filter -> per-class NMS -> top-k.

    output: (N, S_h, S_w, A, 5 + C), or one image (S_h, S_w, A, 5 + C).
    Returns a list of N ``(boxes (K, 4), scores (K,), classes (K,) int64)`` tuples (one
    tuple for a single image), boxes sorted by decreasing score.
    """
    y = as_float_array(output, "output", "yolo_eval")
    single = y.ndim == 4
    if single:
        y = y[None]
    boxes, conf, probs = yolo_decode(y, anchors, image_size=image_size, class_activation=class_activation)
    results = []
    for i in range(y.shape[0]):
        fb, fs, fc = yolo_filter_boxes(boxes[i], conf[i], probs[i], score_threshold)
        results.append(yolo_non_max_suppression(fb, fs, fc, max_boxes, iou_threshold,
                                                class_agnostic=class_agnostic))
    return results[0] if single else results


def _shape_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of (G, 2) and (A, 2) (width, height) shapes aligned at a common centre: (G, A)."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh[:, None, 0] * wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def yolo_targets(boxes, labels, anchors, grid_size, num_classes: int, *, box_format: str = "xyxy",
                 dtype=np.float32) -> np.ndarray:
    """Training targets (F40): each ground-truth box goes to the grid cell containing its
    centre and, in that cell, to the anchor whose shape has the highest IoU with the
    box's shape (ties: the lower anchor index).

    boxes: (G, 4) in image fractions [0, 1] (``box_format`` 'xyxy', 'xywh' or 'cxcywh');
    labels: (G,) integer classes in [0, num_classes); anchors: (A, 2) (width, height) in
    grid cells; grid_size: S or (S_h, S_w). A list of per-image ``boxes`` / ``labels``
    gives a batch.

    Returns (S_h, S_w, A, 5 + C) (or (N, ...) for a batch): per assigned slot
    ``(b_x, b_y, b_w, b_h, 1, one-hot)`` with ``b_x, b_y`` the centre's offset inside the
    cell in [0, 1) and ``b_w, b_h`` the size in cell units; zeros elsewhere. If two
    objects claim the same cell and anchor, the first one keeps it (the course notes
    that YOLO cannot represent both).
    """
    op = "yolo_targets"
    if isinstance(boxes, (list, tuple)) and (len(boxes) == 0 or np.ndim(boxes[0]) == 2):
        if not isinstance(labels, (list, tuple)) or len(labels) != len(boxes):
            raise ValueError(f"{op}: 'labels' must be a list as long as 'boxes' ({len(boxes)} images)")
        return np.stack([yolo_targets(b, l, anchors, grid_size, num_classes, box_format=box_format, dtype=dtype)
                         for b, l in zip(boxes, labels)])
    b = B._boxes(boxes, "boxes", op)
    g = b.shape[0]
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'labels' must be an integer array, got dtype {lab.dtype}")
    if lab.shape != (g,):
        raise ValueError(f"{op}: 'labels' must have shape ({g},) to match 'boxes' {b.shape}, got {lab.shape}")
    nc = operator.index(num_classes)
    if nc < 1:
        raise ValueError(f"{op}: 'num_classes' must be >= 1, got {num_classes}")
    if g and (lab.min() < 0 or lab.max() >= nc):
        raise ValueError(f"{op}: 'labels' must be in [0, {nc}), got values in [{lab.min()}, {lab.max()}]")
    gs = (grid_size, grid_size) if np.ndim(grid_size) == 0 else tuple(grid_size)
    if len(gs) != 2 or min(int(v) for v in gs) < 1:
        raise ValueError(f"{op}: 'grid_size' must be S or (S_h, S_w) with S >= 1, got {grid_size!r}")
    sh, sw = (int(v) for v in gs)
    an = _anchors(anchors, None, op, np.float64)
    a = an.shape[0]
    y = np.zeros((sh, sw, a, 5 + nc), dtype)
    if g == 0:
        return y
    c = B.box_convert(b.astype(np.float64), box_format, "cxcywh")
    if not np.isfinite(c).all() or (c[:, :2] < 0).any() or (c[:, :2] > 1).any():
        raise ValueError(f"{op}: 'boxes' centres must be finite image fractions in [0, 1]")
    gx, gy = c[:, 0] * sw, c[:, 1] * sh
    col = np.minimum(np.floor(gx), sw - 1).astype(np.int64)
    row = np.minimum(np.floor(gy), sh - 1).astype(np.int64)
    wh = np.stack([c[:, 2] * sw, c[:, 3] * sh], axis=1)
    best = _shape_iou(wh, an).argmax(axis=1)
    for k in range(g):
        slot = y[row[k], col[k], best[k]]
        if slot[4] != 0:
            continue
        slot[0:4] = (gx[k] - col[k], gy[k] - row[k], wh[k, 0], wh[k, 1])
        slot[4] = 1
        slot[5 + lab[k]] = 1
    return y
