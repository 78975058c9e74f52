"""Metrics against hand-computed confusion matrices and the course's examples."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from oxinet import metrics as M

# A 3-class example worked by hand:
#   y_true = 0 0 0 1 1 2 2 2 2 1
#   y_pred = 0 1 0 1 2 2 2 0 2 1
# confusion (row true, col pred):
#   class 0: 2 predicted 0, 1 predicted 1           -> [2, 1, 0]
#   class 1: 2 predicted 1, 1 predicted 2           -> [0, 2, 1]
#   class 2: 1 predicted 0, 3 predicted 2           -> [1, 0, 3]
YT = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
YP = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 1])
CM = np.array([[2, 1, 0], [0, 2, 1], [1, 0, 3]])
# per class: TP = (2, 2, 3); predicted = column sums (3, 3, 4); support = row sums (3, 3, 4)
P = np.array([2 / 3, 2 / 3, 3 / 4])
R = np.array([2 / 3, 2 / 3, 3 / 4])
F = 2 * P * R / (P + R)


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(M.confusion_matrix(YT, YP), CM)
    assert M.confusion_matrix(YT, YP).dtype == np.int64
    np.testing.assert_array_equal(M.confusion_matrix(YT, YP, num_classes=4)[:3, :3], CM)
    np.testing.assert_allclose(M.confusion_matrix(YT, YP, normalize="true"), CM / CM.sum(1, keepdims=True))
    np.testing.assert_allclose(M.confusion_matrix(YT, YP, normalize="pred"), CM / CM.sum(0, keepdims=True))
    np.testing.assert_allclose(M.confusion_matrix(YT, YP, normalize="all"), CM / 10)
    scores = np.eye(3)[YP] * 5 - 1  # scores -> argmax
    np.testing.assert_array_equal(M.confusion_matrix(YT, scores), CM)


def test_accuracy_forms():
    assert M.accuracy(YT, YP) == pytest.approx(7 / 10)
    assert M.accuracy(YT, np.eye(3)[YP]) == pytest.approx(0.7)
    # binary probabilities, (N,) and (N, 1), thresholded at 0.5
    y = np.array([1, 0, 1, 1])
    p = np.array([0.9, 0.4, 0.2, 0.5])
    assert M.accuracy(y, p) == pytest.approx(0.75)
    assert M.accuracy(y, p[:, None]) == pytest.approx(0.75)
    assert M.accuracy(y, p, threshold=0.95) == pytest.approx(0.25)
    assert np.isnan(M.accuracy(np.zeros(0, int), np.zeros(0, int)))


def test_top_k_by_hand():
    s = np.array([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05], [0.3, 0.3, 0.4]])
    y = np.array([2, 2, 0])
    # ranks of the true class: 1 (0.5 higher), 2, 1 (0.4 higher; 0.3 tie not higher)
    assert M.top_k_accuracy(y, s, k=1) == 0.0
    assert M.top_k_accuracy(y, s, k=2) == pytest.approx(2 / 3)
    assert M.top_k_accuracy(y, s, k=3) == 1.0
    with pytest.raises(ValueError, match="'k'"):
        M.top_k_accuracy(y, s, k=0)
    with pytest.raises(ValueError, match="'scores' has 3 rows"):
        M.top_k_accuracy(y[:2], s)


def test_precision_recall_f1_averages_by_hand():
    p, r, f = M.precision_recall_f1(YT, YP, average=None)
    np.testing.assert_allclose(p, P)
    np.testing.assert_allclose(r, R)
    np.testing.assert_allclose(f, F)
    assert M.precision(YT, YP, average="macro") == pytest.approx(P.mean())
    assert M.recall(YT, YP, average="macro") == pytest.approx(R.mean())
    assert M.f1_score(YT, YP, average="macro") == pytest.approx(F.mean())
    # micro = accuracy for single-label data
    for fn in (M.precision, M.recall, M.f1_score):
        assert fn(YT, YP, average="micro") == pytest.approx(0.7)
    w = np.array([3, 3, 4]) / 10
    assert M.f1_score(YT, YP, average="weighted") == pytest.approx((F * w).sum())


def test_binary_by_hand_and_fbeta():
    # TP = 3, FP = 1, FN = 2, TN = 2
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    p = np.array([1, 1, 1, 0, 0, 1, 0, 0])
    assert M.precision(y, p) == pytest.approx(3 / 4)
    assert M.recall(y, p) == pytest.approx(3 / 5)
    assert M.f1_score(y, p) == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert M.f1_score(y, p) == pytest.approx(M.harmonic_mean([0.75, 0.6]))
    assert M.fbeta_score(y, p, beta=2) == pytest.approx(5 * 0.75 * 0.6 / (4 * 0.75 + 0.6))
    # class 0 as positive: TP = 2, FP = 2, FN = 1
    assert M.precision(y, p, pos_label=0) == pytest.approx(0.5)
    assert M.recall(y, p, pos_label=0) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="'binary' needs 2 classes"):
        M.f1_score(YT, YP)


def test_zero_division():
    y = np.array([0, 0, 1])
    p = np.array([0, 0, 0])  # class 1 never predicted
    assert M.precision(y, p) == 0.0
    assert M.precision(y, p, zero_division=1.0) == 1.0
    assert M.recall(y, p) == 0.0
    assert M.f1_score(y, p) == 0.0
    # no positives anywhere: everything undefined -> zero_division
    assert M.f1_score(np.array([0, 0]), np.array([0, 0]), zero_division=1.0) == 1.0
    with np.errstate(all="raise"):  # no warnings/divisions by zero inside
        M.precision_recall_f1(y, p, average=None)
    # macro over classes present in y_true or y_pred only (unless num_classes is given)
    assert M.recall(np.array([0, 2]), np.array([0, 2]), average="macro") == 1.0
    assert M.recall(np.array([0, 2]), np.array([0, 2]), average="macro", num_classes=3) == pytest.approx(2 / 3)


def _naive_prf(yt, yp, c):
    tp = sum(1 for a, b in zip(yt, yp) if a == c and b == c)
    fp = sum(1 for a, b in zip(yt, yp) if a != c and b == c)
    fn = sum(1 for a, b in zip(yt, yp) if a == c and b != c)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return p, r, f


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_per_class_against_naive_counts(pairs):
    yt = np.array([a for a, _ in pairs])
    yp = np.array([b for _, b in pairs])
    p, r, f = M.precision_recall_f1(yt, yp, average=None, num_classes=4)
    for c in range(4):
        np.testing.assert_allclose((p[c], r[c], f[c]), _naive_prf(yt, yp, c), atol=1e-12)
    cm = M.confusion_matrix(yt, yp, num_classes=4)
    for a in range(4):
        for b in range(4):
            assert cm[a, b] == sum(1 for u, v in pairs if u == a and v == b)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="'y_pred' has 2 samples"):
        M.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="'y_true'"):
        M.accuracy(np.zeros((2, 2), int), [0, 1])
    with pytest.raises(ValueError, match="'y_true' labels must lie in \\[0, 2\\)"):
        M.confusion_matrix([0, 3], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="'average'"):
        M.f1_score([0, 1], [0, 1], average="samples")
    with pytest.raises(TypeError, match="'y_true'"):
        M.accuracy(np.array([0.5, 1.0]), [0, 1])


def test_select_model_course_example():
    # course: A 90% / 80 ms, B 92% / 95 ms, C 95% / 1500 ms; max accuracy s.t. time <= 100 ms -> B
    cands = {
        "A": {"accuracy": 0.90, "running_time_ms": 80},
        "B": {"accuracy": 0.92, "running_time_ms": 95},
        "C": {"accuracy": 0.95, "running_time_ms": 1500},
    }
    assert M.select_model(cands, "accuracy", {"running_time_ms": ("<=", 100)}) == "B"
    assert M.select_model(cands, "accuracy", {"running_time_ms": "<= 100"}) == "B"
    assert M.select_model(cands, "accuracy") == "C"
    best, ok = M.select_model(cands, "accuracy", {"running_time_ms": lambda t: t <= 90}, return_all=True)
    assert (best, ok) == ("A", ["A"])
    # the erratum's variant: with A at 99% the choice changes to A
    cands["A"]["accuracy"] = 0.99
    assert M.select_model(cands, "accuracy", {"running_time_ms": ("<=", 100)}) == "A"
    assert M.select_model(cands, "running_time_ms", mode="min") == "A"
    # the strawman single number accuracy - 0.5 * time (time in seconds)
    assert M.weighted_sum({"accuracy": 0.92, "time": 0.095}, {"accuracy": 1.0, "time": -0.5}) == pytest.approx(0.8725)


def test_select_model_errors_explain():
    cands = {"A": {"acc": 0.9, "ms": 200}, "B": {"acc": 0.8, "ms": 300}}
    with pytest.raises(ValueError, match=r"'A' fails ms=200.*'B' fails ms=300"):
        M.select_model(cands, "acc", {"ms": ("<", 100)})
    with pytest.raises(KeyError, match="no metric 'f1'"):
        M.select_model(cands, "f1")
    with pytest.raises(ValueError, match="constraint"):
        M.select_model(cands, "acc", {"ms": 100})
