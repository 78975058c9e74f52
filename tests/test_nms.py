"""NMS (plain, class-aware, soft) against the course's greedy procedure in NumPy."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import oxinet.ops as F


def ref_nms(boxes, scores, thr, score_threshold=None, max_output=None):
    """Course F39: take the best remaining box, output it, discard the remaining boxes
    with IoU > thr against it (torchvision's strict '>'), tested as inter > thr * union
    in the boxes' dtype; ties by lower index."""
    dt = boxes.dtype.type
    n = len(boxes)
    idx = [i for i in range(n) if score_threshold is None or scores[i] > score_threshold]
    alive = sorted(idx, key=lambda i: (-float(scores[i]), i))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while alive:
        i = alive.pop(0)
        keep.append(i)
        rest = np.array(alive, dtype=np.int64)
        if rest.size:
            w = np.maximum(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), dt(0))
            h = np.maximum(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), dt(0))
            inter = w * h
            sup = (inter > 0) & (inter > dt(thr) * (area[rest] + area[i] - inter))
            alive = [j for j, s in zip(alive, sup) if not s]
    if max_output is not None:
        keep = keep[:max_output]
    return np.array(keep, np.int64)


def ref_batched(boxes, scores, idxs, thr, **kw):
    keep = []
    for c in np.unique(idxs):
        sub = np.flatnonzero(idxs == c)
        keep.extend(sub[ref_nms(boxes[sub], scores[sub], thr, kw.get("score_threshold"))].tolist())
    keep.sort(key=lambda i: (-float(scores[i]), i))
    return np.array(keep[: kw.get("max_output")], np.int64)


def random_boxes(rng, n, extent=100.0, size=(2, 30)):
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(size[0], size[1], (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


coord = st.integers(0, 10).map(float)
box = st.tuples(coord, coord, coord, coord)  # x2 < x1 and zero-area boxes included
score = st.integers(0, 4).map(lambda v: v / 4)  # many equal scores


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(box, score), max_size=25), st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0]),
       st.sampled_from([np.float32, np.float64]))
def test_nms_matches_reference(items, thr, dtype):
    boxes = np.array([b for b, _ in items], dtype).reshape(-1, 4)
    scores = np.array([s for _, s in items], dtype)
    got = F.nms(boxes, scores, thr)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref_nms(boxes, scores, thr))


@pytest.mark.parametrize("n,extent", [(500, 100.0), (3000, 300.0), (3000, 40.0), (4000, 800.0)])
def test_nms_large_matches_reference(n, extent):
    rng = np.random.default_rng(n)
    boxes = random_boxes(rng, n, extent)
    boxes[::50, 2] += 200  # a few wide boxes exercise the large-box path of the grid
    scores = np.round(rng.uniform(0, 1, n), 2).astype(np.float32)
    for thr in (0.0, 0.5, 0.8):
        np.testing.assert_array_equal(F.nms(boxes, scores, thr), ref_nms(boxes, scores, thr))


def test_nms_identical_boxes_equal_scores_and_edges():
    b = np.tile(np.array([[0, 0, 10, 10]], np.float32), (5, 1))
    s = np.ones(5, np.float32)
    np.testing.assert_array_equal(F.nms(b, s, 0.5), [0])
    np.testing.assert_array_equal(F.nms(b, s, 1.0), [0, 1, 2, 3, 4])  # IoU 1 is not > 1
    s2 = np.array([0.1, 0.9, 0.9, 0.5, 0.9], np.float32)
    np.testing.assert_array_equal(F.nms(b, s2, 0.5), [1])
    # Threshold 0: any positive overlap suppresses, touching boxes do not.
    t = np.array([[0, 0, 1, 1], [1, 0, 2, 1], [0.5, 0, 1.5, 1]], np.float32)
    np.testing.assert_array_equal(F.nms(t, np.array([3, 2, 1], np.float32), 0.0), [0, 1])
    # Empty and single.
    e = F.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert e.dtype == np.int64 and e.shape == (0,)
    np.testing.assert_array_equal(F.nms(t[:1], np.array([0.3]), 0.5), [0])
    # Degenerate boxes never suppress (torchvision: 0 / 0 is NaN, not > threshold).
    d = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [5, 5, 1, 1]], np.float32)
    np.testing.assert_array_equal(F.nms(d, np.array([1, 2, 3], np.float32), 0.0), [2, 1, 0])


def test_course_example():
    # F39 (000): boxes 1, 2, 3 with scores 0.6, 0.9, 0.55 -> keep 2 only.
    b = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [2, 0, 12, 10]], np.float32)
    np.testing.assert_array_equal(F.nms(b, np.array([0.6, 0.9, 0.55], np.float32), 0.5), [1])


def test_nms_options():
    rng = np.random.default_rng(3)
    b = random_boxes(rng, 400, 80)
    s = rng.uniform(0, 1, 400).astype(np.float32)
    full = F.nms(b, s, 0.4)
    np.testing.assert_array_equal(F.nms(b, s, 0.4, max_output=5), full[:5])
    assert F.nms(b, s, 0.4, max_output=0).shape == (0,)
    np.testing.assert_array_equal(F.nms(b, s, 0.4, score_threshold=0.6), ref_nms(b, s, 0.4, score_threshold=0.6))
    assert (s[F.nms(b, s, 0.4, score_threshold=0.6)] > 0.6).all()
    # Non-contiguous inputs.
    bb = np.asfortranarray(b)
    np.testing.assert_array_equal(F.nms(bb, s[::1], 0.4), full)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(box, score, st.integers(-2, 2)), max_size=30), st.sampled_from([0.0, 0.5, 1.0]))
def test_batched_nms_matches_per_class_reference(items, thr):
    boxes = np.array([b for b, _, _ in items], np.float32).reshape(-1, 4)
    scores = np.array([s for _, s, _ in items], np.float32)
    idxs = np.array([c for _, _, c in items], np.int64)
    np.testing.assert_array_equal(F.batched_nms(boxes, scores, idxs, thr), ref_batched(boxes, scores, idxs, thr))


def test_batched_nms_large_and_coordinate_trick():
    rng = np.random.default_rng(4)
    n = 4000
    b = random_boxes(rng, n, 200).astype(np.float64)
    s = rng.uniform(0, 1, n)
    c = rng.integers(0, 80, n).astype(np.int32)
    got = F.batched_nms(b, s, c, 0.5)
    # torchvision's trick: shift each class to its own region, run plain NMS.
    off = c[:, None] * (b.max() + 1)
    np.testing.assert_array_equal(got, ref_nms(b + off, s, 0.5))
    np.testing.assert_array_equal(F.batched_nms(b, s, c, 0.5, max_output=7), got[:7])
    np.testing.assert_array_equal(F.batched_nms(b, s, c, 0.5, score_threshold=0.9),
                                  ref_batched(b, s, c, 0.5, score_threshold=0.9))
    e = F.batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), 0.5)
    assert e.dtype == np.int64 and e.shape == (0,)


def ref_soft_nms(boxes, scores, method, thr, sigma, min_score):
    b = boxes.astype(np.float64)
    s = scores.astype(np.float64).copy()
    live = [i for i in range(len(b)) if s[i] >= min_score]
    keep, kept = [], []
    while live:
        m = max(live, key=lambda i: (s[i], -i))
        live.remove(m)
        keep.append(m)
        kept.append(s[m])
        nxt = []
        for i in live:
            iw = max(min(b[m, 2], b[i, 2]) - max(b[m, 0], b[i, 0]), 0)
            ih = max(min(b[m, 3], b[i, 3]) - max(b[m, 1], b[i, 1]), 0)
            inter = iw * ih
            iou = 0.0 if inter <= 0 else inter / ((b[m, 2] - b[m, 0]) * (b[m, 3] - b[m, 1]) + (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1]) - inter)
            if method == "linear":
                s[i] *= (1 - iou) if iou > thr else 1.0
            else:
                s[i] *= np.exp(-iou * iou / sigma)
            if s[i] >= min_score:
                nxt.append(i)
        live = nxt
    return np.array(keep, np.int64), np.array(kept)


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_soft_nms_matches_reference(method):
    rng = np.random.default_rng(5)
    b = random_boxes(rng, 300, 60).astype(np.float64)
    s = rng.uniform(0, 1, 300)
    k, v = F.soft_nms(b, s, iou_threshold=0.3, sigma=0.5, score_threshold=0.05, method=method)
    rk, rv = ref_soft_nms(b, s, method, 0.3, 0.5, 0.05)
    np.testing.assert_array_equal(k, rk)
    np.testing.assert_allclose(v, rv, rtol=1e-12)
    assert np.all(np.diff(v) <= 0)
    k32, v32 = F.soft_nms(b.astype(np.float32), s.astype(np.float32), method=method)
    assert k32.dtype == np.int64 and v32.dtype == np.float32
    e = F.soft_nms(np.zeros((0, 4)), np.zeros(0))
    assert e[0].shape == (0,) and e[1].shape == (0,)


def test_soft_nms_linear_reduces_to_hard_nms_with_high_cut():
    # With linear decay and a score cut above every decayed score of overlapping boxes,
    # a pair with IoU 1 behaves like hard NMS.
    b = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [3, 3, 4, 4]], np.float64)
    k, v = F.soft_nms(b, np.array([0.9, 0.8, 0.7]), iou_threshold=0.5, method="linear", score_threshold=0.01)
    np.testing.assert_array_equal(k, [0, 2])


def test_bad_inputs_name_the_argument():
    b = np.zeros((3, 4), np.float32)
    s = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="'boxes'"):
        F.nms(np.zeros((3, 3), np.float32), s, 0.5)
    with pytest.raises(ValueError, match="'scores'"):
        F.nms(b, np.ones(4, np.float32), 0.5)
    with pytest.raises(ValueError, match="'scores'"):
        F.nms(b, np.array([1, np.nan, 0], np.float32), 0.5)
    with pytest.raises(TypeError, match="'scores'"):
        F.nms(b, np.ones(3, np.int64), 0.5)
    with pytest.raises(ValueError, match="'iou_threshold'"):
        F.nms(b, s, float("nan"))
    with pytest.raises(ValueError, match="'iou_threshold'"):
        F.nms(b, s, -0.1)
    with pytest.raises(ValueError, match="'max_output'"):
        F.nms(b, s, 0.5, max_output=-1)
    with pytest.raises(TypeError, match="'idxs'"):
        F.batched_nms(b, s, np.zeros(3, np.float32), 0.5)
    with pytest.raises(ValueError, match="'idxs'"):
        F.batched_nms(b, s, np.zeros(2, np.int64), 0.5)
    with pytest.raises(ValueError, match="'method'"):
        F.soft_nms(b, s, method="cubic")
    with pytest.raises(ValueError, match="'sigma'"):
        F.soft_nms(b, s, sigma=0.0)
    with pytest.raises(ValueError, match="'scores'"):
        F.soft_nms(b, np.array([np.nan, 1, 1], np.float32))


def test_results_do_not_depend_on_thread_count():
    import oxinet

    rng = np.random.default_rng(6)
    b = random_boxes(rng, 3000, 300)
    s = rng.uniform(0, 1, 3000).astype(np.float32)
    c = rng.integers(0, 10, 3000)
    before = oxinet.get_num_threads()
    try:
        res = []
        for t in (1, 2):
            oxinet.set_num_threads(t)
            res.append((F.batched_nms(b, s, c, 0.5), F.box_iou(b[:300], b)))
    finally:
        oxinet.set_num_threads(before)
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_array_equal(res[0][1], res[1][1])
