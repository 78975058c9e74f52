"""Multiclass SVM (hinge loss) and k-nearest neighbours against naive references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import check_grad
from oxinet.classic import KNearestNeighbors, LinearSVM, pairwise_distances, svm_loss
from oxinet.classic.knn import k_smallest


def _naive_svm_loss(W, b, X, y, reg, delta=1.0):
    """Loop form of F9 with the (sub)gradient accumulated example by example."""
    N, C = X.shape[0], W.shape[1]
    loss, dW, db = 0.0, np.zeros_like(W), np.zeros_like(b)
    for i in range(N):
        s = X[i] @ W + b
        for k in range(C):
            if k == y[i]:
                continue
            margin = s[k] - s[y[i]] + delta
            if margin > 0:
                loss += margin
                dW[:, k] += X[i]
                dW[:, y[i]] -= X[i]
                db[k] += 1
                db[y[i]] -= 1
    return loss / N + reg * np.sum(W * W), dW / N + 2 * reg * W, db / N


def _svm_problem(seed=0, N=12, D=5, C=4):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((D, C)), rng.standard_normal(C) * 0.1, rng.standard_normal((N, D)),
            rng.integers(0, C, N))


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_svm_loss_matches_loop(reg):
    W, b, X, y = _svm_problem()
    loss, dW, db = svm_loss(W, b, X, y, reg)
    ref = _naive_svm_loss(W, b, X, y, reg)
    assert loss == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(dW, ref[1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, ref[2], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_svm_gradient_finite_differences(reg):
    W, b, X, y = _svm_problem(seed=1)
    _, dW, db = svm_loss(W, b, X, y, reg)
    check_grad(lambda: svm_loss(W, b, X, y, reg)[0], W, dW, tol=1e-6)
    check_grad(lambda: svm_loss(W, b, X, y, reg)[0], b, db, tol=1e-6)


def test_svm_loss_zero_when_margins_satisfied():
    X = np.eye(3)
    W = 5 * np.eye(3)
    loss, dW, db = svm_loss(W, np.zeros(3), X, np.arange(3), 0.0)
    assert loss == 0.0 and not dW.any() and not db.any()
    # all scores equal: each of the C-1 wrong classes costs exactly delta
    loss, _, _ = svm_loss(np.zeros((3, 3)), np.zeros(3), X, np.arange(3))
    assert loss == pytest.approx(2.0)


def _blobs(n_per=60, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [4, 0], [0, 4]], float)
    X = np.concatenate([c + spread * rng.standard_normal((n_per, 2)) for c in centres])
    y = np.repeat(np.array([3, 7, 9]), n_per)  # arbitrary label values
    return X, y


@pytest.mark.parametrize("batch_size", [None, 32])
def test_linear_svm_learns_blobs(batch_size):
    X, y = _blobs()
    m = LinearSVM(reg=1e-3, lr=0.05, epochs=60, batch_size=batch_size, seed=0).fit(X, y)
    assert m.score(X, y) > 0.97
    assert set(np.unique(m.predict(X))) <= {3, 7, 9}
    assert np.mean(m.loss_history_[-5:]) < m.loss_history_[0]
    # seeded training is repeatable
    m2 = LinearSVM(reg=1e-3, lr=0.05, epochs=60, batch_size=batch_size, seed=0).fit(X, y)
    np.testing.assert_array_equal(m.W_, m2.W_)


def test_svm_bad_input():
    W, b, X, y = _svm_problem()
    with pytest.raises(ValueError, match="'X'"):
        svm_loss(W, b, X[:, :3], y)
    with pytest.raises(ValueError, match="'y'"):
        svm_loss(W, b, X, y + 10)
    with pytest.raises(ValueError, match="'b'"):
        svm_loss(W, b[:2], X, y)
    with pytest.raises(ValueError, match="'y'"):
        LinearSVM().fit(X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="'batch_size'"):
        LinearSVM(batch_size=0)


# ------------------------------------------------------------------ distances and kNN

def _loop_distances(A, B, metric):
    out = np.zeros((len(A), len(B)))
    for i in range(len(A)):
        for j in range(len(B)):
            d = A[i] - B[j]
            out[i, j] = np.abs(d).sum() if metric == "l1" else np.sqrt((d * d).sum())
    return out


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_distances_match_loops(metric, dtype):
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((13, 6)).astype(dtype), rng.standard_normal((17, 6)).astype(dtype)
    d = pairwise_distances(A, B, metric)
    assert d.dtype == dtype and d.shape == (13, 17)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(d, _loop_distances(A.astype(float), B.astype(float), metric), rtol=tol, atol=tol)
    # chunked L1 (tiny blocks) and non-contiguous inputs give the same answer
    d2 = pairwise_distances(A.T.copy().T, B[::1], metric, chunk_elements=7)
    np.testing.assert_allclose(d2, d, rtol=tol, atol=tol)


def test_pairwise_distances_self_is_zero_and_squared():
    rng = np.random.default_rng(1)
    A = 100 + rng.standard_normal((20, 4))  # large offset: cancellation in the expansion
    d = pairwise_distances(A, A)
    assert np.all(d >= 0)
    np.testing.assert_allclose(np.diag(d), 0, atol=1e-5)
    np.testing.assert_allclose(pairwise_distances(A, A, squared=True), _loop_distances(A, A, "l2") ** 2,
                               atol=1e-8)
    assert pairwise_distances(np.zeros((0, 4)), A).shape == (0, 20)


def _brute_knn(Xtr, ytr, Xte, k, metric):
    """Reference: stable sort of the loop distances, vote with ties to the nearest label."""
    D = _loop_distances(Xte, Xtr, metric)
    out = []
    for i in range(len(Xte)):
        order = sorted(range(len(Xtr)), key=lambda j: (D[i, j], j))[:k]
        labels = [ytr[j] for j in order]
        counts = {lab: labels.count(lab) for lab in labels}
        best = max(counts.values())
        out.append(next(lab for lab in labels if counts[lab] == best))
    return np.array(out)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 7), metric=st.sampled_from(["l1", "l2"]),
       n_classes=st.integers(2, 4))
def test_knn_matches_brute_force(seed, k, metric, n_classes):
    rng = np.random.default_rng(seed)
    # integer coordinates create many exact distance ties and vote ties
    Xtr = rng.integers(0, 4, (25, 2)).astype(float)
    ytr = rng.integers(0, n_classes, 25) * 10
    Xte = rng.integers(0, 4, (9, 2)).astype(float)
    model = KNearestNeighbors(k, metric, chunk_rows=4).fit(Xtr, ytr)
    np.testing.assert_array_equal(model.predict(Xte), _brute_knn(Xtr, ytr, Xte, k, metric))


def test_knn_tie_goes_to_nearest_label_and_kneighbors():
    Xtr = np.array([[0.0], [1.0], [3.0]])
    ytr = np.array([5, 2, 2])
    m = KNearestNeighbors(2).fit(Xtr, ytr)
    # from 0.4: neighbours 0 (label 5) and 1 (label 2): one vote each, 5 is nearer
    assert m.predict([[0.4]])[0] == 5
    assert m.predict([[0.6]])[0] == 2
    d, idx = m.kneighbors([[0.4]])
    np.testing.assert_allclose(d, [[0.4, 0.6]])
    np.testing.assert_array_equal(idx, [[0, 1]])
    assert KNearestNeighbors(3).fit(Xtr, ytr).predict([[0.0]])[0] == 2


def test_knn_bad_input():
    with pytest.raises(ValueError, match="'metric'"):
        KNearestNeighbors(1, "cosine")
    with pytest.raises(ValueError, match="'k'"):
        KNearestNeighbors(0)
    m = KNearestNeighbors(5).fit(np.zeros((3, 2)), np.arange(3))
    with pytest.raises(ValueError, match="'k'"):
        m.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="'X'"):
        KNearestNeighbors(1).fit(np.zeros((3, 2)), np.arange(3)).predict(np.zeros((1, 3)))
    with pytest.raises(TypeError, match="'A'"):
        pairwise_distances(np.array([[1 + 1j]]), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="'B'"):
        pairwise_distances(np.zeros((2, 3)), np.zeros((2, 2)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 30), k=st.integers(1, 30), levels=st.integers(1, 6))
def test_k_smallest_equals_stable_argsort(seed, m, k, levels):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, levels, (5, m)).astype(float)  # few distinct values: many ties
    k = min(k, m)
    np.testing.assert_array_equal(k_smallest(d, k), np.argsort(d, axis=1, kind="stable")[:, :k])


def test_k_smallest_with_nan():
    d = np.array([[np.nan, 1.0, 0.5, np.nan], [2.0, 1.0, 3.0, 0.0]])
    np.testing.assert_array_equal(k_smallest(d, 3), np.argsort(d, axis=1, kind="stable")[:, :3])
