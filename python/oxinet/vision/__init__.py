"""Course applications on top of :mod:`oxinet.ops`: YOLO decoding, filtering and
training targets (:mod:`.yolo`), anchor generation and box coding (:mod:`.anchors`),
detection metrics AP / mAP (:mod:`.metrics`)."""

from oxinet.vision.anchors import anchor_grid, cell_anchors, decode_boxes, encode_boxes
from oxinet.vision.metrics import (
    average_precision, evaluate_detections, match_detections, precision_recall_curve,
)
from oxinet.vision.yolo import (
    yolo_decode, yolo_eval, yolo_filter_boxes, yolo_non_max_suppression, yolo_targets,
)

__all__ = [
    "anchor_grid", "cell_anchors", "decode_boxes", "encode_boxes",
    "average_precision", "evaluate_detections", "match_detections", "precision_recall_curve",
    "yolo_decode", "yolo_eval", "yolo_filter_boxes", "yolo_non_max_suppression", "yolo_targets",
]
