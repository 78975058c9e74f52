"""Kalman filter, Hungarian assignment, SORT and MOT metrics."""

import itertools

import numpy as np
import pytest

from oxinet.tracking import (BoxKalmanFilter, KalmanFilter, Sort, associate, box_to_z, generate_scene,
                             iou_matrix, linear_sum_assignment, mot_metrics, run_sort, z_to_box)


# ------------------------------------------------------------------ Kalman filter

def test_kalman_predict_update_by_hand():
    # 1-D position/velocity, F = [[1, 1], [0, 1]], measure position, Q = diag(1, 0), R = 1
    kf = KalmanFilter(F=[[1, 1], [0, 1]], H=[[1, 0]], Q=np.diag([1.0, 0.0]), R=[[1.0]],
                      x0=[0.0, 1.0], P0=np.eye(2))
    kf.predict()
    # x = F x = (1, 1); P = F I F^T + Q = [[2, 1], [1, 1]] + diag(1, 0)
    np.testing.assert_allclose(kf.x, [1.0, 1.0])
    np.testing.assert_allclose(kf.P, [[3.0, 1.0], [1.0, 1.0]])
    kf.update([2.0])
    # S = 3 + 1 = 4, K = (3/4, 1/4), innovation 1 -> x = (1.75, 1.25)
    # P = (I - K H) P = [[1/4, 0], [-1/4, 1]] [[3, 1], [1, 1]] = [[3/4, 1/4], [1/4, 3/4]]
    np.testing.assert_allclose(kf.x, [1.75, 1.25], rtol=1e-14)
    np.testing.assert_allclose(kf.P, [[0.75, 0.25], [0.25, 0.75]], rtol=1e-14)


def test_kalman_bad_shapes():
    with pytest.raises(ValueError, match="'Q'"):
        KalmanFilter(np.eye(2), [[1, 0]], np.eye(3), [[1.0]], [0, 0], np.eye(2))
    kf = KalmanFilter(np.eye(2), [[1, 0]], np.eye(2), [[1.0]], [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="'z'"):
        kf.update([1.0, 2.0])


def test_box_state_conversion_roundtrip():
    box = np.array([10.0, 20.0, 50.0, 40.0])
    z = box_to_z(box)
    np.testing.assert_allclose(z, [30.0, 30.0, 800.0, 2.0])
    np.testing.assert_allclose(z_to_box(z), box)


def test_box_filter_learns_constant_velocity():
    box = np.array([0.0, 0.0, 20.0, 10.0])
    kf = BoxKalmanFilter(box)
    np.testing.assert_array_equal(kf.F[:3, 4:], np.eye(3))  # cx, cy, s advance by their rates
    for t in range(1, 40):
        kf.predict()
        kf.update(box_to_z(box + np.array([3.0, -2.0, 3.0, -2.0]) * t))
    np.testing.assert_allclose(kf.x[4:6], [3.0, -2.0], atol=1e-2)
    pred = z_to_box(kf.predict())
    np.testing.assert_allclose(pred, box + np.array([3.0, -2.0, 3.0, -2.0]) * 40, atol=0.05)


# ------------------------------------------------------------------ Hungarian

def _brute(cost):
    n, m = cost.shape
    if n <= m:
        return min(cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(m), n))
    return min(cost[list(p), np.arange(m)].sum() for p in itertools.permutations(range(n), m))


@pytest.mark.parametrize("seed", range(40))
def test_hungarian_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, m = (int(v) for v in rng.integers(1, 7, 2))
    cost = rng.integers(0, 6, (n, m)).astype(float) if seed % 2 else rng.standard_normal((n, m))
    rows, cols = linear_sum_assignment(cost)
    assert len(rows) == min(n, m) and len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert np.all(np.diff(rows) > 0)
    assert cost[rows, cols].sum() == pytest.approx(_brute(cost), abs=1e-12)
    r2, c2 = linear_sum_assignment(cost, maximize=True)
    assert cost[r2, c2].sum() == pytest.approx(-_brute(-cost), abs=1e-12)


def test_hungarian_against_scipy():
    scipy_opt = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for shape in [(30, 30), (20, 45), (45, 20), (1, 5), (60, 60)]:
        cost = rng.random(shape)
        r, c = linear_sum_assignment(cost)
        rs, cs = scipy_opt.linear_sum_assignment(cost)
        assert cost[r, c].sum() == pytest.approx(cost[rs, cs].sum(), rel=1e-12)
        np.testing.assert_array_equal(r, rs)


def test_hungarian_edge_cases_and_bad_input():
    r, c = linear_sum_assignment(np.zeros((0, 3)))
    assert r.size == 0 and c.size == 0 and r.dtype == np.int64
    r, c = linear_sum_assignment(np.array([[5.0]]))
    assert list(r) == [0] and list(c) == [0]
    with pytest.raises(ValueError, match="'cost'"):
        linear_sum_assignment(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="'cost'"):
        linear_sum_assignment(np.zeros(3))
    with pytest.raises(TypeError, match="'cost'"):
        linear_sum_assignment(np.array([["a"]]))


# ------------------------------------------------------------------ IoU, association

def test_iou_matrix_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]], float)
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    iou = iou_matrix(a, b)
    np.testing.assert_allclose(iou[0], [25 / 175, 1.0, 0.0])
    np.testing.assert_allclose(iou[1], [0.0, 0.04, 0.0])
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)
    # two zero-area boxes: 0, not NaN (the Hungarian method needs finite costs)
    assert iou_matrix([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (30, 2))
    boxes = np.column_stack([xy, xy + rng.uniform(1, 20, (30, 2))])
    ref = np.array([[_iou_loop(p, q) for q in boxes[:12]] for p in boxes])
    np.testing.assert_allclose(iou_matrix(boxes, boxes[:12]), ref, rtol=1e-12, atol=1e-15)


def _iou_loop(p, q):
    iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
    ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
    inter = iw * ih
    return inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)


def test_associate_applies_threshold():
    dets = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 60, 60]], float)
    preds = np.array([[101, 101, 111, 111], [1, 1, 11, 11], [56, 56, 66, 66]], float)
    matches, ud, ut = associate(dets, preds, iou_threshold=0.3)
    assert sorted(map(tuple, matches)) == [(0, 1), (1, 0)]
    assert list(ud) == [2] and list(ut) == [2]  # IoU 16/184 < 0.3


# ------------------------------------------------------------------ SORT

def test_sort_birth_after_min_hits_and_death_after_max_age():
    tracker = Sort(max_age=2, min_hits=3, iou_threshold=0.3)
    a = np.array([0.0, 0.0, 20.0, 20.0])
    b = np.array([100.0, 100.0, 120.0, 130.0])
    step = np.array([2.0, 1.0, 2.0, 1.0])
    reported_b = []
    for t in range(12):
        dets = [a + step * t]
        if t >= 5:
            dets.append(b + step * t)
        out = tracker.update(np.array(dets))
        reported_b.append(any(o[1] > 50 for o in out))
        if t < 3:  # the first min_hits frames report at once
            assert len(out) == 1
    # object b appears at frame 5 and is reported from its 3rd consecutive hit (frame 7)
    assert reported_b == [False] * 7 + [True] * 5
    ids = {int(o[4]) for o in tracker.update(np.array([a + step * 12, b + step * 12]))}
    assert ids == {1, 2}
    # a disappears: not reported while coasting, deleted after max_age missed frames
    for t in range(13, 16):
        out = tracker.update(np.array([b + step * t]))
        assert [int(o[4]) for o in out] == [2]
    assert [t.id for t in tracker.tracks] == [2]
    # reappearing a is a new track (id 3)
    tracker.update(np.array([a, b + step * 16]))
    assert sorted(t.id for t in tracker.tracks) == [2, 3]


def test_sort_empty_frames_and_bad_input():
    tracker = Sort()
    assert tracker.update(np.zeros((0, 4))).shape == (0, 5)
    assert tracker.update([]).shape == (0, 5)
    out = tracker.update(np.array([[0, 0, 10, 10, 0.9]]))
    assert out.shape == (1, 5)
    with pytest.raises(ValueError, match="'detections'"):
        tracker.update(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="'detections'"):
        tracker.update(np.array([[10, 0, 0, 10]]))
    with pytest.raises(ValueError, match="'iou_threshold'"):
        Sort(iou_threshold=2)
    with pytest.raises(TypeError, match="'max_age'"):
        Sort(max_age=1.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sort_on_generated_scene(seed):
    scene = generate_scene(150, 8, seed=seed)
    ids, boxes = run_sort(scene.detections, max_age=3, min_hits=3, iou_threshold=0.3)
    m = mot_metrics(scene.gt_ids, scene.gt_boxes, ids, boxes)
    assert m["mota"] >= 0.85, m
    assert m["id_switches"] <= 2, m
    assert m["motp"] >= 0.85 and m["precision"] >= 0.97
    # the raw detections (a new id per box per frame) do far worse on identities
    raw_ids = [np.arange(len(d)) + 1000 * t for t, d in enumerate(scene.detections)]
    raw = mot_metrics(scene.gt_ids, scene.gt_boxes, raw_ids, scene.detections)
    assert raw["id_switches"] > 50 * m["id_switches"] + 50


def test_scene_is_seeded_and_consistent():
    a = generate_scene(30, 4, seed=5)
    b = generate_scene(30, 4, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a.detections, b.detections))
    for ids, boxes, dets, fp in zip(a.gt_ids, a.gt_boxes, a.detections, a.det_is_fp):
        assert boxes.shape == (len(ids), 4) and fp.shape == (len(dets),)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= 640)
    with pytest.raises(ValueError, match="'miss_prob'"):
        generate_scene(miss_prob=2)


# ------------------------------------------------------------------ metrics

def _two_objects(n=6):
    ids = [np.array([1, 2])] * n
    boxes = [np.array([[0, 0, 10, 10], [50, 0, 60, 10]], float) + [t, 0, t, 0] for t in range(n)]
    return ids, boxes


def test_mot_metrics_perfect_and_empty():
    ids, boxes = _two_objects()
    m = mot_metrics(ids, boxes, ids, boxes)
    assert m["mota"] == 1.0 and m["motp"] == pytest.approx(1.0) and m["id_switches"] == 0
    m = mot_metrics(ids, boxes, [np.zeros(0)] * 6, [np.zeros((0, 4))] * 6)
    assert m["mota"] == 0.0 and m["false_negatives"] == 12 and m["recall"] == 0.0


def test_mot_metrics_counts_by_hand():
    ids, boxes = _two_objects()
    hyp_ids = [np.array([7, 8])] * 3 + [np.array([8, 7])] * 3        # identities swap at frame 3
    hyp_boxes = [b.copy() for b in boxes]
    hyp_ids[4] = np.array([8, 7, 9])                                 # a false positive at frame 4
    hyp_boxes[4] = np.vstack([boxes[4], [[200, 200, 210, 210]]])
    hyp_ids[5] = np.array([8])                                       # object 2 missed at frame 5
    hyp_boxes[5] = boxes[5][:1]
    m = mot_metrics(ids, boxes, hyp_ids, hyp_boxes)
    assert (m["id_switches"], m["false_positives"], m["false_negatives"]) == (2, 1, 1)
    assert m["mota"] == pytest.approx(1 - (1 + 1 + 2) / 12)
    assert m["precision"] == pytest.approx(11 / 12)
    # a box shifted so that IoU < 0.5 is a miss plus a false positive, not a match
    shifted = [b + [6, 0, 6, 0] for b in boxes]
    m = mot_metrics(ids, boxes, ids, shifted)
    assert m["matches"] == 0 and m["false_positives"] == 12


def test_mot_metrics_keeps_previous_match_over_better_iou():
    # CLEAR MOT: an object keeps its previous hypothesis while IoU stays above the threshold,
    # even if another hypothesis now overlaps it more
    gt_ids = [np.array([1])] * 2
    gt_boxes = [np.array([[0, 0, 10, 10]], float)] * 2
    hyp_ids = [np.array([5]), np.array([5, 6])]
    hyp_boxes = [np.array([[1, 0, 11, 10]], float), np.array([[2, 0, 12, 10], [0, 0, 10, 10]], float)]
    m = mot_metrics(gt_ids, gt_boxes, hyp_ids, hyp_boxes)
    assert m["id_switches"] == 0 and m["false_positives"] == 1
    with pytest.raises(ValueError, match="length"):
        mot_metrics(gt_ids, gt_boxes, hyp_ids[:1], hyp_boxes)
