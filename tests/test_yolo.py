"""YOLO decoding, filtering, per-class NMS pipeline and target builder (course F39-F41)."""

import numpy as np
import pytest

from oxinet.vision import yolo_decode, yolo_eval, yolo_filter_boxes, yolo_non_max_suppression, yolo_targets
from test_nms import ref_nms

ANCHORS = np.array([[1.0, 2.0], [2.5, 1.2]])


def ref_decode(y, anchors, image_size=None):
    n, sh, sw, a, d = y.shape
    boxes = np.zeros((n, sh, sw, a, 4))
    conf = np.zeros((n, sh, sw, a))
    probs = np.zeros((n, sh, sw, a, d - 5))
    sig = lambda v: 1 / (1 + np.exp(-v))
    for b in range(n):
        for row in range(sh):
            for col in range(sw):
                for k in range(a):
                    t = y[b, row, col, k]
                    cx, cy = (sig(t[0]) + col) / sw, (sig(t[1]) + row) / sh
                    w, h = anchors[k, 0] * np.exp(t[2]) / sw, anchors[k, 1] * np.exp(t[3]) / sh
                    boxes[b, row, col, k] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
                    conf[b, row, col, k] = sig(t[4])
                    e = np.exp(t[5:] - t[5:].max())
                    probs[b, row, col, k] = e / e.sum()
    if image_size is not None:
        boxes *= [image_size[1], image_size[0], image_size[1], image_size[0]]
    return boxes, conf, probs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_matches_loop_reference(dtype):
    y = np.random.default_rng(0).standard_normal((2, 3, 4, 2, 8)).astype(dtype)
    for size in (None, (96, 128)):
        got = yolo_decode(y, ANCHORS, image_size=size)
        ref = ref_decode(y.astype(np.float64), ANCHORS, size)
        for g, r in zip(got, ref):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, r, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    _, _, p = yolo_decode(y, ANCHORS, class_activation="sigmoid")
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-y[..., 5:].astype(np.float64))), rtol=1e-5)


def test_filter_boxes_by_hand():
    boxes = np.arange(12, dtype=np.float32).reshape(3, 4)
    conf = np.array([0.9, 0.5, 1.0], np.float32)
    probs = np.array([[0.1, 0.9], [1.0, 0.0], [0.6, 0.4]], np.float32)
    b, s, c = yolo_filter_boxes(boxes, conf, probs, 0.6)
    # scores: 0.81 (class 1), 0.5 (dropped), 0.6 (not > 0.6: dropped, course "discard <= 0.6")
    np.testing.assert_array_equal(b, boxes[:1])
    np.testing.assert_allclose(s, [0.81], rtol=1e-6)
    np.testing.assert_array_equal(c, [1])
    assert c.dtype == np.int64
    b2, s2, c2 = yolo_filter_boxes(boxes, conf[:, None], probs, 0.55)
    np.testing.assert_array_equal(c2, [1, 0])


def test_pipeline_equals_pieces_and_reference():
    rng = np.random.default_rng(1)
    y = rng.standard_normal((2, 5, 5, 2, 7)) * 1.5
    out = yolo_eval(y, ANCHORS, image_size=(100, 100), score_threshold=0.3, iou_threshold=0.4, max_boxes=6)
    boxes, conf, probs = ref_decode(y, ANCHORS, (100, 100))
    assert len(out) == 2
    for i in range(2):
        sc = conf[i][..., None] * probs[i]
        cls = sc.argmax(-1).reshape(-1)
        best = sc.max(-1).reshape(-1)
        bx = boxes[i].reshape(-1, 4)
        m = best > 0.3
        fb, fs, fc = bx[m], best[m], cls[m]
        keep = []
        for c in np.unique(fc):
            sub = np.flatnonzero(fc == c)
            keep += sub[ref_nms(fb[sub], fs[sub], 0.4)].tolist()
        keep = sorted(keep, key=lambda k: (-fs[k], k))[:6]
        gb, gs, gc = out[i]
        np.testing.assert_allclose(gb, fb[keep], rtol=1e-10)
        np.testing.assert_allclose(gs, fs[keep], rtol=1e-10)
        np.testing.assert_array_equal(gc, fc[keep])
    single = yolo_eval(y[0], ANCHORS, image_size=(100, 100), score_threshold=0.3, iou_threshold=0.4, max_boxes=6)
    np.testing.assert_array_equal(single[0], out[0][0])
    # Class-agnostic NMS keeps a subset of what per-class NMS keeps at most as many boxes.
    ag = yolo_eval(y, ANCHORS, score_threshold=0.3, iou_threshold=0.4, max_boxes=100, class_agnostic=True)
    pc = yolo_eval(y, ANCHORS, score_threshold=0.3, iou_threshold=0.4, max_boxes=100)
    assert all(len(a[1]) <= len(p[1]) for a, p in zip(ag, pc))


def test_nms_step_is_per_class():
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    s = np.array([0.9, 0.8, 0.7], np.float32)
    c = np.array([0, 1, 0])
    kb, ks, kc = yolo_non_max_suppression(b, s, c, max_boxes=10, iou_threshold=0.5)
    np.testing.assert_array_equal(kc, [0, 1])
    kb, ks, kc = yolo_non_max_suppression(b, s, c, max_boxes=1, iou_threshold=0.5)
    np.testing.assert_array_equal(kc, [0])
    np.testing.assert_allclose(ks, [0.9], rtol=1e-6)


def test_targets_course_example():
    # 3x3 grid, 2 anchors (tall pedestrian-like, wide car-like), 3 classes; a car centred
    # in cell (row 2, col 1) with a wide shape goes to anchor 2 with class c2.
    anchors = np.array([[0.5, 1.5], [1.5, 0.6]])
    box = np.array([[0.45, 0.70, 0.75, 0.90]])  # xyxy fractions; centre (0.6, 0.8)
    y = yolo_targets(box, np.array([1]), anchors, 3, 3)
    assert y.shape == (3, 3, 2, 8) and y.dtype == np.float32
    slot = y[2, 1, 1]
    np.testing.assert_allclose(slot, [0.6 * 3 - 1, 0.8 * 3 - 2, 0.9, 0.6, 1, 0, 1, 0], rtol=1e-6)
    assert np.count_nonzero(y[..., 4]) == 1


def test_targets_decode_round_trip_and_batch():
    rng = np.random.default_rng(2)
    anchors = np.array([[1.0, 1.0], [3.0, 1.5], [1.5, 3.0]])
    cxcy = rng.uniform(0.05, 0.95, (6, 2))
    wh = rng.uniform(0.05, 0.4, (6, 2))
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    labels = rng.integers(0, 4, 6)
    y = yolo_targets(boxes, labels, anchors, (7, 5), 4, dtype=np.float64)
    # Turn the targets into the raw output that decodes back to them.
    raw = np.full(y.shape, -20.0)
    obj = y[..., 4] > 0
    k_anchor = np.broadcast_to(np.arange(3)[None, None, :], y.shape[:3])
    raw[obj, 0] = np.log(y[obj, 0] / (1 - y[obj, 0]))
    raw[obj, 1] = np.log(y[obj, 1] / (1 - y[obj, 1]))
    raw[obj, 2] = np.log(y[obj, 2] / anchors[k_anchor[obj], 0])
    raw[obj, 3] = np.log(y[obj, 3] / anchors[k_anchor[obj], 1])
    raw[obj, 4] = 20.0
    raw[..., 5:] = np.where(y[..., 5:] > 0, 20.0, -20.0)
    b, s, c = yolo_eval(raw, anchors, score_threshold=0.5, iou_threshold=1.0, max_boxes=100)
    assert len(b) == obj.sum()
    got = sorted(map(tuple, np.round(np.c_[b, c], 6)))
    n_slots = obj.sum()
    want = sorted(map(tuple, np.round(np.c_[boxes, labels], 6)))
    assert n_slots <= 6 and set(got) <= set(want)
    batch = yolo_targets([boxes, boxes[:2]], [labels, labels[:2]], anchors, (7, 5), 4)
    assert batch.shape == (2, 7, 5, 3, 9)
    np.testing.assert_array_equal(batch[0], y.astype(np.float32))


def test_targets_first_object_keeps_the_slot():
    b = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.12, 0.28, 0.28]])
    y = yolo_targets(b, np.array([0, 1]), np.array([[1.0, 1.0]]), 2, 2)
    assert y[0, 0, 0, 5] == 1 and y[0, 0, 0, 6] == 0


def test_bad_inputs_name_the_argument():
    y = np.zeros((1, 3, 3, 2, 7), np.float32)
    with pytest.raises(ValueError, match="'output'"):
        yolo_decode(y[0], ANCHORS)
    with pytest.raises(ValueError, match="'anchors'"):
        yolo_decode(y, np.ones((3, 2)))
    with pytest.raises(ValueError, match="'class_activation'"):
        yolo_decode(y, ANCHORS, class_activation="relu")
    with pytest.raises(ValueError, match="'confidence'"):
        yolo_filter_boxes(np.zeros((4, 4)), np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="'labels'"):
        yolo_targets(np.array([[0.1, 0.1, 0.2, 0.2]]), np.array([5]), ANCHORS, 3, 3)
    with pytest.raises(TypeError, match="'labels'"):
        yolo_targets(np.array([[0.1, 0.1, 0.2, 0.2]]), np.array([0.0]), ANCHORS, 3, 3)
    with pytest.raises(ValueError, match="'boxes'"):
        yolo_targets(np.array([[1.1, 0.1, 1.3, 0.2]]), np.array([0]), ANCHORS, 3, 3)
