"""Detection cases: NMS (plain and class-aware), pairwise box IoU, RoIAlign.

Peers: OpenCV's ``cv2.dnn.NMSBoxes`` / ``NMSBoxesBatched`` (optional,
opencv-python-headless), and "numpy-loop", the usual NumPy NMS: sort by score, then
loop, each step computing the IoU of the current box against all remaining boxes
vectorised and dropping those above the threshold (the shape of torchvision's
reference loop). Class-aware NMS peers use torchvision's coordinate-offset trick (each
class shifted to its own region, then one plain NMS). IoU's peer is NumPy's broadcast
formula with [N, M, 2] temporaries; the IoU cases' rate column counts box pairs per second.
"""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case


def random_boxes(n: int, seed: int = 0, extent: float = 1000.0, size=(8.0, 64.0)):
    """``n`` random xyxy boxes (float32) in an extent x extent image and uniform scores."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(size[0], size[1], (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    return boxes, scores


def numpy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.array(keep, np.int64)


def numpy_batched_nms(boxes, scores, idxs, iou_threshold):
    offsets = idxs.astype(boxes.dtype)[:, None] * (boxes.max() + 1)
    return numpy_nms(boxes + offsets, scores, iou_threshold)


def numpy_box_iou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _xywh(boxes):
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)


def _nms_case(n: int):
    @case(f"nms {n} random boxes IoU 0.5", group="detection", peers=("opencv", "numpy-loop"))
    def factory(lib):
        boxes, scores = random_boxes(n)
        if lib == "oxinet":
            import oxinet.ops as F

            return lambda: F.nms(boxes, scores, 0.5)
        if lib == "opencv":
            import cv2

            rects, sc = _xywh(boxes), scores.astype(np.float32)
            return lambda: cv2.dnn.NMSBoxes(rects, sc, 0.0, 0.5)
        if lib == "numpy-loop":
            return lambda: numpy_nms(boxes, scores, 0.5)
        return None

    return factory


for _n in (1000, 10000, 50000):
    _nms_case(_n)


@case("batched_nms 20000 boxes 80 classes IoU 0.5", group="detection", peers=("opencv", "numpy-loop"))
def batched_nms_20k(lib):
    boxes, scores = random_boxes(20000)
    idxs = np.random.default_rng(1).integers(0, 80, 20000)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.batched_nms(boxes, scores, idxs, 0.5)
    if lib == "opencv":
        import cv2

        rects, sc, cls = _xywh(boxes), scores.astype(np.float32), idxs.astype(np.int32)
        return lambda: cv2.dnn.NMSBoxesBatched(rects, sc, cls, 0.0, 0.5)
    if lib == "numpy-loop":
        return lambda: numpy_batched_nms(boxes, scores, idxs, 0.5)
    return None


@case("box_iou 4000x4000", group="detection", items=4000 * 4000, unit="pairs", peers=("numpy",))
def box_iou_4000(lib):
    a, _ = random_boxes(4000, seed=1)
    b, _ = random_boxes(4000, seed=2)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.box_iou(a, b)
    if lib == "numpy":
        return lambda: numpy_box_iou(a, b)
    return None


@case("box_iou 4000x4000 into out=", group="detection", items=4000 * 4000, unit="pairs", peers=("numpy",))
def box_iou_4000_out(lib):
    a, _ = random_boxes(4000, seed=1)
    b, _ = random_boxes(4000, seed=2)
    if lib == "oxinet":
        import oxinet.ops as F

        out = np.empty((4000, 4000), np.float32)
        return lambda: F.box_iou(a, b, out=out)
    if lib == "numpy":
        return lambda: numpy_box_iou(a, b)
    return None


@case("roi_align N2 C256 50x68 K512 7x7 sr2", group="detection", peers=())
def roi_align_frcnn(lib):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 256, 50, 68), dtype=np.float32)
    boxes, _ = random_boxes(512, extent=700, size=(16, 300))
    rois = np.concatenate([rng.integers(0, 2, (512, 1)).astype(np.float32), boxes], axis=1)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.roi_align(x, rois, 7, spatial_scale=1 / 16, sampling_ratio=2, aligned=True)
    return None


@case("roi_pool N2 C256 50x68 K512 7x7", group="detection", peers=())
def roi_pool_frcnn(lib):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 256, 50, 68), dtype=np.float32)
    boxes, _ = random_boxes(512, extent=700, size=(16, 300))
    rois = np.concatenate([rng.integers(0, 2, (512, 1)).astype(np.float32), boxes], axis=1)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.roi_pool(x, rois, 7, spatial_scale=1 / 16)
    return None


def numpy_soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, score_threshold=0.001):
    """Gaussian soft-NMS as the paper's loop: pick the best, decay the rest by exp(-iou^2/sigma)."""
    s = scores.astype(np.float64).copy()
    alive = np.arange(len(s))
    keep = []
    while alive.size:
        best = alive[np.argmax(s[alive])]
        if s[best] <= score_threshold:
            break
        keep.append(best)
        alive = alive[alive != best]
        iou = numpy_box_iou(boxes[best][None], boxes[alive])[0]
        s[alive] *= np.exp(-(iou ** 2) / sigma)
    return np.array(keep, np.int64)


@case("soft_nms gaussian 2000 random boxes", group="detection", peers=("numpy-loop",))
def soft_nms_2k(lib):
    boxes, scores = random_boxes(2000, seed=3)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.soft_nms(boxes, scores, 0.3, sigma=0.5)
    return (lambda: numpy_soft_nms(boxes, scores)) if lib == "numpy-loop" else None


@case("generalized_box_iou 2000x2000", group="detection", items=2000 * 2000, unit="pairs", peers=("numpy",))
def giou_2000(lib):
    a, _ = random_boxes(2000, seed=4)
    b, _ = random_boxes(2000, seed=5)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.generalized_box_iou(a, b)

    def numpy_giou():
        area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
        area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
        inter = np.prod(np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:])
                                - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None), axis=2)
        union = area_a[:, None] + area_b[None, :] - inter
        hull = np.prod(np.maximum(a[:, None, 2:], b[None, :, 2:]) - np.minimum(a[:, None, :2], b[None, :, :2]), axis=2)
        return inter / union - (hull - union) / hull

    return numpy_giou if lib == "numpy" else None
