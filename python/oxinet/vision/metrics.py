"""Detection metrics (course INVENTORY F42): matching detections to ground truth,
precision/recall curves, average precision per class and mAP.

Matching: detections of one class are taken by decreasing score (ties: image order,
then detection order); each is a true positive when its best IoU with a not yet
matched ground-truth box of the same image and class is >= the IoU threshold (that
box is then matched), otherwise a false positive. Missed ground-truth boxes are the
false negatives. ``P = TP / #detections``, ``R = TP / #ground truths`` (cumulative).

AP interpolation (``method``):
  * ``'all-point'``  area under the precision envelope (PASCAL VOC 2010+);
  * ``'11-point'``   mean envelope precision at recall 0, 0.1, ..., 1 (VOC 2007);
  * ``'101-point'``  mean envelope precision at recall 0, 0.01, ..., 1 (COCO).
``iou_thresholds='coco'`` means 0.50:0.05:0.95 (and defaults ``method`` to '101-point').
A class without ground-truth boxes has AP NaN and is left out of the mean.
"""

from __future__ import annotations

import numpy as np

from oxinet.ops import boxes as B

_METHODS = ("all-point", "11-point", "101-point")
COCO_IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)


def _match_sorted(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Greedy matching of detections (rows of ``iou``, already in score order) to ground
    truths (columns): (T, K) bool true-positive flags, one row per threshold."""
    k, g = iou.shape
    tp = np.zeros((thresholds.size, k), bool)
    if g == 0:
        return tp
    for t, thr in enumerate(thresholds):
        free = np.ones(g, bool)
        for i in range(k):
            cand = np.where(free, iou[i], -np.inf)
            j = int(np.argmax(cand))
            if free[j] and cand[j] >= thr:
                tp[t, i] = True
                free[j] = False
    return tp


def match_detections(det_boxes, det_scores, gt_boxes, iou_threshold: float = 0.5) -> np.ndarray:
    """True-positive flags (K,) bool for one image and one class, in the order given.
    det_boxes: (K, 4), det_scores: (K,), gt_boxes: (G, 4), all xyxy."""
    op = "match_detections"
    d = B._boxes(det_boxes, "det_boxes", op)
    s = B._scores(det_scores, d.shape[0], d.shape, op)
    gt = B._boxes(gt_boxes, "gt_boxes", op)
    thr = B._threshold(iou_threshold, "iou_threshold", op)
    order = np.argsort(-s, kind="stable")
    iou = B.box_iou(d[order], gt) if d.shape[0] and gt.shape[0] else np.zeros((d.shape[0], gt.shape[0]))
    tp_sorted = _match_sorted(np.nan_to_num(iou, nan=0.0), np.array([thr]))[0]
    tp = np.zeros(d.shape[0], bool)
    tp[order] = tp_sorted
    return tp


def precision_recall_curve(scores, tp, num_gt: int):
    """Cumulative precision and recall over detections sorted by decreasing score.

    scores: (K,); tp: (K,) bool true-positive flags; num_gt: number of ground truths.
    Returns ``(precision, recall, thresholds)``, each (K,), float64; ``thresholds`` are
    the sorted scores (entry i: the curve point when keeping scores >= thresholds[i]).
    Recall is NaN when ``num_gt == 0``.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    t = np.asarray(tp, bool).reshape(-1)
    if s.shape != t.shape:
        raise ValueError(f"precision_recall_curve: 'tp' has shape {t.shape} but 'scores' has {s.shape}")
    order = np.argsort(-s, kind="stable")
    ctp = np.cumsum(t[order])
    n = np.arange(1, s.size + 1)
    precision = ctp / np.maximum(n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = ctp / num_gt if num_gt > 0 else np.full(s.size, np.nan)
    return precision, recall, s[order]


def average_precision(precision, recall, method: str = "all-point") -> float:
    """AP from a precision/recall curve (points in decreasing-score order)."""
    if method not in _METHODS:
        raise ValueError(f"average_precision: 'method' must be one of {_METHODS}, got {method!r}")
    p = np.asarray(precision, np.float64).reshape(-1)
    r = np.asarray(recall, np.float64).reshape(-1)
    if p.shape != r.shape:
        raise ValueError(f"average_precision: 'precision' has shape {p.shape} but 'recall' has {r.shape}")
    if p.size == 0:
        return 0.0
    if method == "all-point":
        mrec = np.concatenate([[0.0], r, [1.0]])
        mpre = np.concatenate([[0.0], p, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        i = np.flatnonzero(mrec[1:] != mrec[:-1])
        return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    if method == "11-point":
        pts = np.linspace(0.0, 1.0, 11)
        return float(np.mean([p[r >= t].max() if (r >= t).any() else 0.0 for t in pts]))
    env = np.maximum.accumulate(p[::-1])[::-1]
    pts = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(r, pts, side="left")
    q = np.where(idx < r.size, env[np.minimum(idx, r.size - 1)], 0.0)
    return float(np.mean(q))


def _unpack(item, n: int, what: str, i: int):
    if isinstance(item, dict):
        keys = ("boxes", "scores", "labels") if n == 3 else ("boxes", "labels")
        try:
            return tuple(item[k] for k in keys)
        except KeyError as e:
            raise ValueError(f"evaluate_detections: '{what}'[{i}] lacks key {e}") from None
    if len(item) != n:
        raise ValueError(f"evaluate_detections: '{what}'[{i}] must hold {n} arrays, got {len(item)}")
    return tuple(item)


def evaluate_detections(detections, ground_truths, iou_thresholds=0.5, method: str | None = None,
                        num_classes: int | None = None) -> dict:
    """AP per class and mAP over a data set.

    detections: one entry per image, ``(boxes (K, 4), scores (K,), labels (K,))`` or a
    dict with those keys; ground_truths: per image ``(boxes (G, 4), labels (G,))`` or a
    dict. iou_thresholds: a number, a sequence, or ``'coco'`` (0.5:0.05:0.95). method:
    '11-point', 'all-point' (default) or '101-point' (default for 'coco').

    Returns a dict: ``ap`` (T, C) float64 (NaN where a class has no ground truth),
    ``map`` (mean over thresholds and classes), ``map_per_threshold`` (T,), ``classes``
    (C,), ``iou_thresholds`` (T,), ``num_gt`` (C,), and ``curves``: {(t, class):
    (precision, recall)}.
    """
    op = "evaluate_detections"
    if isinstance(iou_thresholds, str):
        if iou_thresholds != "coco":
            raise ValueError(f"{op}: 'iou_thresholds' must be a number, a sequence or 'coco', got {iou_thresholds!r}")
        thr = COCO_IOU_THRESHOLDS.copy()
        method = method or "101-point"
    else:
        thr = np.atleast_1d(np.asarray(iou_thresholds, np.float64))
        if thr.ndim != 1 or thr.size == 0 or np.isnan(thr).any() or (thr < 0).any() or (thr > 1).any():
            raise ValueError(f"{op}: 'iou_thresholds' must be numbers in [0, 1], got {iou_thresholds!r}")
    method = method or "all-point"
    if method not in _METHODS:
        raise ValueError(f"{op}: 'method' must be one of {_METHODS}, got {method!r}")
    if len(detections) != len(ground_truths):
        raise ValueError(f"{op}: 'detections' has {len(detections)} images but 'ground_truths' has {len(ground_truths)}")
    dets, gts = [], []
    labels_seen = set()
    for i, (d, g) in enumerate(zip(detections, ground_truths)):
        db, ds, dl = _unpack(d, 3, "detections", i)
        gb, gl = _unpack(g, 2, "ground_truths", i)
        db = B._boxes(db, f"detections[{i}] boxes", op)
        ds = B._scores(ds, db.shape[0], db.shape, op)
        dl = np.asarray(dl).reshape(-1)
        gb = B._boxes(gb, f"ground_truths[{i}] boxes", op)
        gl = np.asarray(gl).reshape(-1)
        for name, lab, n in (("detections", dl, db.shape[0]), ("ground_truths", gl, gb.shape[0])):
            if lab.size and lab.dtype.kind not in "iu":
                raise TypeError(f"{op}: '{name}'[{i}] labels must be integers, got dtype {lab.dtype}")
            if lab.shape != (n,):
                raise ValueError(f"{op}: '{name}'[{i}] has {n} boxes but labels of shape {lab.shape}")
        dl, gl = dl.astype(np.int64), gl.astype(np.int64)
        labels_seen.update(dl.tolist())
        labels_seen.update(gl.tolist())
        dets.append((db, ds, dl))
        gts.append((gb, gl))
    classes = np.arange(num_classes) if num_classes is not None else np.array(sorted(labels_seen), np.int64)
    ap = np.full((thr.size, classes.size), np.nan)
    num_gt = np.zeros(classes.size, np.int64)
    curves = {}
    for ci, c in enumerate(classes):
        all_scores, all_tp = [], []
        for (db, ds, dl), (gb, gl) in zip(dets, gts):
            dm, gm = dl == c, gl == c
            num_gt[ci] += int(gm.sum())
            if not dm.any():
                continue
            d_b, d_s, g_b = db[dm], ds[dm], gb[gm]
            order = np.argsort(-d_s, kind="stable")
            if g_b.shape[0]:
                iou = np.nan_to_num(B.box_iou(d_b[order], g_b).astype(np.float64), nan=0.0)
            else:
                iou = np.zeros((order.size, 0))
            all_tp.append(_match_sorted(iou, thr))
            all_scores.append(d_s[order].astype(np.float64))
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        tps = np.concatenate(all_tp, axis=1) if all_tp else np.zeros((thr.size, 0), bool)
        for t in range(thr.size):
            p, r, _ = precision_recall_curve(scores, tps[t], int(num_gt[ci]))
            curves[(float(thr[t]), int(c))] = (p, r)
            if num_gt[ci] > 0:
                ap[t, ci] = average_precision(p, r, method)
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(ap)
        per_t = np.array([ap[t][valid[t]].mean() if valid[t].any() else np.nan for t in range(thr.size)])
        m = float(np.nanmean(per_t)) if (~np.isnan(per_t)).any() else float("nan")
    return {"ap": ap, "map": m, "map_per_threshold": per_t, "classes": classes, "iou_thresholds": thr,
            "num_gt": num_gt, "curves": curves}
