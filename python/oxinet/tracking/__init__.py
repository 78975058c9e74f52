"""Multi-object tracking: Kalman filtering, Hungarian assignment, SORT, MOT metrics.

* :mod:`~oxinet.tracking.kalman`: a linear Kalman filter and SORT's constant-velocity box
  filter over ``[cx, cy, s, r, vx, vy, vs]``;
* :func:`linear_sum_assignment`: own O(n^3) Hungarian method for rectangular matrices;
* :class:`Sort`: predict, IoU cost, assignment with a threshold, birth/death;
* :func:`generate_scene`: seeded moving boxes with noisy, missed and false detections;
* :func:`mot_metrics`: MOTA, MOTP, identity switches, precision/recall.
"""

from oxinet.tracking._iou import iou_matrix
from oxinet.tracking.hungarian import linear_sum_assignment
from oxinet.tracking.kalman import BoxKalmanFilter, KalmanFilter, box_to_z, z_to_box
from oxinet.tracking.metrics import mot_metrics
from oxinet.tracking.scene import Scene, generate_scene
from oxinet.tracking.sort import Sort, Track, associate, run_sort

__all__ = [
    "iou_matrix", "linear_sum_assignment", "BoxKalmanFilter", "KalmanFilter", "box_to_z", "z_to_box",
    "mot_metrics", "Scene", "generate_scene", "Sort", "Track", "associate", "run_sort",
]
