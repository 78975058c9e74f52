"""SORT: Simple Online and Realtime Tracking (Bewley et al., 2016), INVENTORY S50.

Per frame:

1. every track's Kalman filter predicts its box (constant velocity, see
   :mod:`oxinet.tracking.kalman`);
2. cost matrix ``1 - IoU(detections, predictions)`` and a minimum-cost assignment (own
   Hungarian implementation); pairs with ``IoU < iou_threshold`` are rejected;
3. matched tracks are updated with their detection; each unmatched detection starts a
   new track (birth); a track unmatched for more than ``max_age`` consecutive frames is
   deleted (death);
4. a track is reported in a frame only if it was matched in that frame and has been
   matched in ``min_hits`` consecutive frames (during the first ``min_hits`` frames of
   the sequence tracks are reported at once, so the start is not lost).

Track ids are positive integers counted per :class:`Sort` instance, starting at 1.
"""

from __future__ import annotations

import numpy as np

from oxinet.tracking._iou import iou_matrix
from oxinet.tracking.hungarian import linear_sum_assignment
from oxinet.tracking.kalman import BoxKalmanFilter, box_to_z


class Track:
    """One tracked object: its filter and bookkeeping counters."""

    def __init__(self, box, track_id: int, **kf_kwargs):
        self.kf = BoxKalmanFilter(box, **kf_kwargs)
        self.id = track_id
        self.hits = 1              # total matched frames
        self.hit_streak = 1        # consecutive matched frames up to now
        self.age = 0               # frames since birth
        self.time_since_update = 0

    def predict(self) -> np.ndarray:
        self.kf.predict()
        self.age += 1
        if self.time_since_update > 0:
            self.hit_streak = 0
        self.time_since_update += 1
        return self.kf.box()

    def update(self, box) -> None:
        self.kf.update(box_to_z(box))
        self.time_since_update = 0
        self.hits += 1
        self.hit_streak += 1

    def box(self) -> np.ndarray:
        return self.kf.box()


def associate(detections, predictions, iou_threshold: float = 0.3):
    """Match detections (N, 4) to predicted boxes (M, 4) by IoU.

    Returns ``(matches (K, 2) [det, track], unmatched_dets (N-K,), unmatched_tracks (M-K,))``.
    """
    dets = np.asarray(detections, np.float64).reshape(-1, 4)
    preds = np.asarray(predictions, np.float64).reshape(-1, 4)
    n, m = dets.shape[0], preds.shape[0]
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.arange(n), np.arange(m)
    iou = iou_matrix(dets, preds)
    rows, cols = linear_sum_assignment(1.0 - iou)
    keep = iou[rows, cols] >= iou_threshold
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    unmatched_d = np.setdiff1d(np.arange(n), matches[:, 0])
    unmatched_t = np.setdiff1d(np.arange(m), matches[:, 1])
    return matches, unmatched_d, unmatched_t


class Sort:
    """Multi-object tracker.

    max_age: frames a track survives without a matching detection; min_hits:
    consecutive matches before a track is reported; iou_threshold: minimum IoU for a
    detection-track match; kf_kwargs: noise settings for :class:`BoxKalmanFilter`.
    """

    def __init__(self, max_age: int = 1, min_hits: int = 3, iou_threshold: float = 0.3, **kf_kwargs):
        for name, v in (("max_age", max_age), ("min_hits", min_hits)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Sort: '{name}' must be an int, got {type(v).__name__}")
            if v < 0:
                raise ValueError(f"Sort: '{name}' must be >= 0, got {v}")
        if not 0.0 <= float(iou_threshold) <= 1.0:
            raise ValueError(f"Sort: 'iou_threshold' must be in [0, 1], got {iou_threshold}")
        self.max_age = int(max_age)
        self.min_hits = int(min_hits)
        self.iou_threshold = float(iou_threshold)
        self.kf_kwargs = kf_kwargs
        self.tracks: list[Track] = []
        self.frame_count = 0
        self._next_id = 1

    def update(self, detections) -> np.ndarray:
        """Advance one frame. detections: (N, 4) boxes (x1, y1, x2, y2), or (N, 5) with a score
        column (ignored), N may be 0. Returns (K, 5) float64 rows ``[x1, y1, x2, y2, id]``
        of the tracks reported in this frame."""
        dets = np.asarray(detections, np.float64)
        if dets.size == 0:
            dets = np.zeros((0, 4))
        if dets.ndim != 2 or dets.shape[1] not in (4, 5):
            raise ValueError(f"Sort.update: 'detections' must have shape (N, 4) or (N, 5), got {dets.shape}")
        dets = dets[:, :4]
        if not np.all(np.isfinite(dets)):
            raise ValueError("Sort.update: 'detections' contains NaN or infinite coordinates")
        if np.any(dets[:, 2] <= dets[:, 0]) or np.any(dets[:, 3] <= dets[:, 1]):
            raise ValueError("Sort.update: 'detections' must have x2 > x1 and y2 > y1")
        self.frame_count += 1
        preds = np.array([t.predict() for t in self.tracks]).reshape(-1, 4)
        ok = np.all(np.isfinite(preds), axis=1)
        if not ok.all():
            self.tracks = [t for t, k in zip(self.tracks, ok) if k]
            preds = preds[ok]
        matches, unmatched_d, _ = associate(dets, preds, self.iou_threshold)
        for d, t in matches:
            self.tracks[t].update(dets[d])
        for d in unmatched_d:
            self.tracks.append(Track(dets[d], self._next_id, **self.kf_kwargs))
            self._next_id += 1
        out = []
        for t in self.tracks:
            if t.time_since_update < 1 and (t.hit_streak >= self.min_hits or self.frame_count <= self.min_hits):
                out.append(np.concatenate([t.box(), [t.id]]))
        self.tracks = [t for t in self.tracks if t.time_since_update <= self.max_age]
        return np.array(out).reshape(-1, 5)


def run_sort(detections_per_frame, **sort_kwargs):
    """Run :class:`Sort` over a sequence; returns per frame ``(ids (K,), boxes (K, 4))``."""
    tracker = Sort(**sort_kwargs)
    ids, boxes = [], []
    for dets in detections_per_frame:
        res = tracker.update(dets)
        ids.append(res[:, 4].astype(np.int64))
        boxes.append(res[:, :4])
    return ids, boxes
