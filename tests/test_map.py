"""AP / mAP against hand-computed cases (course F42) and a brute-force matcher."""

import numpy as np
import pytest

from oxinet.vision import average_precision, evaluate_detections, match_detections, precision_recall_curve


def test_course_example_curve_and_ap():
    # 3 GT boxes; detections by score: TP, FP, TP, TP, FP.
    scores = np.array([0.3, 0.9, 0.5, 0.99, 0.8])
    tp = np.array([False, False, True, True, True])
    p, r, t = precision_recall_curve(scores, tp, 3)
    np.testing.assert_allclose(t, [0.99, 0.9, 0.8, 0.5, 0.3])
    np.testing.assert_allclose(p, [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(r, [1 / 3, 1 / 3, 2 / 3, 1, 1])
    # all-point: envelope 1 on (0, 1/3], 0.75 on (1/3, 1]
    assert average_precision(p, r, "all-point") == pytest.approx((1 + 0.75 + 0.75) / 3)
    # 11-point: recall 0, .1, .2, .3 -> 1; .4 ... 1.0 -> 0.75
    assert average_precision(p, r, "11-point") == pytest.approx((4 + 7 * 0.75) / 11)
    # 101-point: recall 0..0.33 (34 points) -> 1, 0.34..1.0 (67 points) -> 0.75
    assert average_precision(p, r, "101-point") == pytest.approx((34 + 67 * 0.75) / 101)


def test_perfect_and_empty():
    assert average_precision([1.0, 1.0], [0.5, 1.0]) == pytest.approx(1.0)
    assert average_precision([], []) == 0.0
    p, r, _ = precision_recall_curve([0.5], [False], 0)
    assert np.isnan(r).all()


def _box(x, y, s=10.0):
    return [x, y, x + s, y + s]


def test_matching_greedy_by_score_and_iou_threshold():
    gt = np.array([_box(0, 0), _box(50, 50)])
    det = np.array([_box(1, 0), _box(0, 1), _box(50, 52), _box(200, 200)])
    scores = np.array([0.6, 0.9, 0.8, 0.7])
    # by score: det1 (IoU .82 with gt0) TP, det2 (IoU .67 with gt1) TP, det3 FP, det0 FP (gt0 taken)
    np.testing.assert_array_equal(match_detections(det, scores, gt, 0.5), [False, True, True, False])
    np.testing.assert_array_equal(match_detections(det, scores, gt, 0.75), [False, True, False, False])
    # IoU exactly at the threshold counts (course: TP if IoU >= alpha)
    d = np.array([[0, 0, 10, 5.0]])
    np.testing.assert_array_equal(match_detections(d, [1.0], gt[:1], 0.5), [True])


def test_evaluate_two_images_two_classes():
    gts = [
        (np.array([_box(0, 0), _box(30, 30)]), np.array([0, 1])),
        (np.array([_box(0, 0)]), np.array([0])),
    ]
    dets = [
        (np.array([_box(0, 1), _box(30, 30), _box(80, 80)]), np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0])),
        {"boxes": np.array([_box(1, 1), _box(0, 0)]), "scores": np.array([0.95, 0.4]), "labels": np.array([0, 1])},
    ]
    res = evaluate_detections(dets, gts, iou_thresholds=0.5)
    # class 0: scores .95 TP, .9 TP, .7 FP with 2 GT -> AP 1 ; class 1: .8 TP, .4 FP with 1 GT -> AP 1
    np.testing.assert_allclose(res["ap"], [[1.0, 1.0]])
    assert res["map"] == pytest.approx(1.0)
    np.testing.assert_array_equal(res["num_gt"], [2, 1])
    # Stricter threshold: det (0,1) vs gt (0,0): IoU 90/110 = 0.818; (1,1) vs (0,0): 81/119 = 0.68
    res = evaluate_detections(dets, gts, iou_thresholds=[0.5, 0.75], method="all-point")
    # class 0 at 0.75: .95 FP, .9 TP, .7 FP -> P = 0, 1/2, 1/3; R = 0, 1/2, 1/2 -> AP = 0.5 * 0.5
    np.testing.assert_allclose(res["ap"][1], [0.25, 1.0])
    np.testing.assert_allclose(res["map_per_threshold"], [1.0, 0.625])
    assert res["map"] == pytest.approx(0.8125)
    coco = evaluate_detections(dets, gts, iou_thresholds="coco")
    assert coco["ap"].shape == (10, 2)
    np.testing.assert_allclose(coco["iou_thresholds"], np.arange(0.5, 0.96, 0.05))
    assert 0 < coco["map"] < 1


def test_classes_without_ground_truth_are_excluded():
    gts = [(np.array([_box(0, 0)]), np.array([0]))]
    dets = [(np.array([_box(0, 0), _box(40, 40)]), np.array([0.9, 0.8]), np.array([0, 2]))]
    res = evaluate_detections(dets, gts, num_classes=3)
    assert res["ap"][0, 0] == 1.0 and np.isnan(res["ap"][0, 1]) and np.isnan(res["ap"][0, 2])
    assert res["map"] == 1.0
    # A class with ground truth but no detection has AP 0.
    res = evaluate_detections([(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))], gts)
    assert res["ap"][0, 0] == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="'method'"):
        average_precision([1.0], [1.0], "13-point")
    with pytest.raises(ValueError, match="'iou_thresholds'"):
        evaluate_detections([], [], iou_thresholds=1.5)
    with pytest.raises(ValueError, match="'ground_truths'"):
        evaluate_detections([(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))], [])
    with pytest.raises(ValueError, match="'scores'"):
        evaluate_detections([(np.zeros((1, 4)), np.zeros(2), np.zeros(1, np.int64))],
                            [(np.zeros((0, 4)), np.zeros(0, np.int64))])
