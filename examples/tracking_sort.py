"""Multi-object tracking with SORT on a generated scene of moving boxes with noisy,
missed and false detections; prints MOTA, MOTP and identity switches, next to the same
metrics for the raw detections (a fresh identity per detection).

Run: python examples/tracking_sort.py   (about a second)
"""

from __future__ import annotations

import numpy as np

from oxinet.tracking import generate_scene, mot_metrics, run_sort


def main(n_frames: int = 300, n_objects: int = 12, seed: int = 0, max_age: int = 3, min_hits: int = 3,
         iou_threshold: float = 0.3, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    scene = generate_scene(n_frames, n_objects, seed=seed)
    ids, boxes = run_sort(scene.detections, max_age=max_age, min_hits=min_hits, iou_threshold=iou_threshold)
    m = mot_metrics(scene.gt_ids, scene.gt_boxes, ids, boxes)
    raw_ids = [np.arange(len(d)) + 10_000 * t for t, d in enumerate(scene.detections)]
    raw = mot_metrics(scene.gt_ids, scene.gt_boxes, raw_ids, scene.detections)
    say(f"scene: {n_frames} frames, {n_objects} objects, {m['num_gt']} object-frames, "
        f"{sum(f.sum() for f in scene.det_is_fp)} false-positive detections")
    say(f"SORT:           MOTA {m['mota']:.3f}  MOTP {m['motp']:.3f}  ID switches {m['id_switches']}  "
        f"FN {m['false_negatives']}  FP {m['false_positives']}")
    say(f"raw detections: MOTA {raw['mota']:.3f}  MOTP {raw['motp']:.3f}  ID switches {raw['id_switches']}")
    return {"sort": m, "raw": raw}


if __name__ == "__main__":
    main()
