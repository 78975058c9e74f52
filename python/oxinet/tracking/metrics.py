"""CLEAR MOT metrics (Bernardin & Stiefelhagen, 2008) for box tracks.

Per frame, ground-truth objects are matched to tracker hypotheses with IoU >= threshold:
first every object keeps the hypothesis it was matched to before if that is still valid;
the rest are matched by a minimum-cost (1 - IoU) assignment. Then

* FN: objects left unmatched; FP: hypotheses left unmatched;
* IDSW: an object matched to a different hypothesis id than at its last match;
* MOTA = 1 - (FN + FP + IDSW) / GT (GT = number of object-frames; can be negative);
* MOTP = mean IoU of the matched pairs ("precision" of the matched boxes);
* precision = TP / (TP + FP), recall = TP / GT.
"""

from __future__ import annotations

import numpy as np

from oxinet.tracking._iou import iou_matrix
from oxinet.tracking.hungarian import linear_sum_assignment


def mot_metrics(gt_ids, gt_boxes, hyp_ids, hyp_boxes, *, iou_threshold: float = 0.5) -> dict:
    """CLEAR MOT over a sequence given per-frame lists of ids (k,) and boxes (k, 4).

    Returns a dict with mota, motp, precision, recall, id_switches, false_negatives,
    false_positives, matches, num_gt, num_frames.
    """
    n = len(gt_ids)
    if not (len(gt_boxes) == len(hyp_ids) == len(hyp_boxes) == n):
        raise ValueError(f"mot_metrics: the four per-frame lists must have one length, got "
                         f"{len(gt_ids)}, {len(gt_boxes)}, {len(hyp_ids)}, {len(hyp_boxes)}")
    last_match: dict = {}     # gt id -> hypothesis id at its most recent match
    fn = fp = idsw = tp = num_gt = 0
    iou_sum = 0.0
    for t in range(n):
        g_ids = np.asarray(gt_ids[t]).reshape(-1)
        h_ids = np.asarray(hyp_ids[t]).reshape(-1)
        g_box = np.asarray(gt_boxes[t], np.float64).reshape(-1, 4)
        h_box = np.asarray(hyp_boxes[t], np.float64).reshape(-1, 4)
        if g_ids.size != g_box.shape[0] or h_ids.size != h_box.shape[0]:
            raise ValueError(f"mot_metrics: frame {t} has ids and boxes of different lengths")
        num_gt += g_ids.size
        iou = iou_matrix(g_box, h_box)
        pairs = []
        g_free = np.ones(g_ids.size, bool)
        h_free = np.ones(h_ids.size, bool)
        h_index = {int(h): j for j, h in enumerate(h_ids)}
        for i, g in enumerate(g_ids):  # keep still-valid correspondences
            prev = last_match.get(int(g))
            j = h_index.get(prev) if prev is not None else None
            if j is not None and h_free[j] and iou[i, j] >= iou_threshold:
                pairs.append((i, j))
                g_free[i] = h_free[j] = False
        gi, hj = np.flatnonzero(g_free), np.flatnonzero(h_free)
        if gi.size and hj.size:
            sub = iou[np.ix_(gi, hj)]
            cost = np.where(sub >= iou_threshold, 1.0 - sub, 2.0)
            r, c = linear_sum_assignment(cost)
            for a, b in zip(r, c):
                if sub[a, b] >= iou_threshold:
                    pairs.append((gi[a], hj[b]))
        for i, j in pairs:
            g, h = int(g_ids[i]), int(h_ids[j])
            if g in last_match and last_match[g] != h:
                idsw += 1
            last_match[g] = h
            iou_sum += iou[i, j]
        tp += len(pairs)
        fn += g_ids.size - len(pairs)
        fp += h_ids.size - len(pairs)
    return {
        "mota": 1.0 - (fn + fp + idsw) / num_gt if num_gt else float("nan"),
        "motp": iou_sum / tp if tp else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / num_gt if num_gt else float("nan"),
        "id_switches": idsw,
        "false_negatives": fn,
        "false_positives": fp,
        "matches": tp,
        "num_gt": num_gt,
        "num_frames": n,
    }
