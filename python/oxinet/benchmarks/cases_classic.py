"""Classical-ML cases: kNN distances through the GEMM, kNN prediction, Hungarian assignment."""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

# CIFAR-10-sized kNN exercise: 500 test images against 5000 training images of 3072 values
N_TEST, N_TRAIN, DIM = 500, 5000, 3072


def _points():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((N_TEST, DIM), dtype=np.float32),
            rng.standard_normal((N_TRAIN, DIM), dtype=np.float32))


def _numpy_l2(a, b):
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0))


@case(f"knn l2 distances {N_TEST}x{N_TRAIN} d{DIM}", group="classic",
      flops=2.0 * N_TEST * N_TRAIN * DIM, peers=("numpy",))
def knn_l2_distances(lib):
    a, b = _points()
    if lib == "oxinet":
        from oxinet.classic import pairwise_distances
        return lambda: pairwise_distances(a, b, "l2")
    if lib == "numpy":
        return lambda: _numpy_l2(a, b)
    return None


@case(f"knn predict k=5 {N_TEST}x{N_TRAIN} d{DIM}", group="classic",
      flops=2.0 * N_TEST * N_TRAIN * DIM, peers=("numpy",))
def knn_predict(lib):
    a, b = _points()
    labels = np.random.default_rng(1).integers(0, 10, N_TRAIN)
    if lib == "oxinet":
        from oxinet.classic import KNearestNeighbors
        model = KNearestNeighbors(5, "l2").fit(b, labels)
        return lambda: model.predict(a)
    if lib == "numpy":
        def predict():  # the textbook version: full argsort, bincount vote
            idx = np.argsort(_numpy_l2(a, b), axis=1)[:, :5]
            return np.array([np.argmax(np.bincount(labels[r], minlength=10)) for r in idx])
        return predict
    return None


@case("hungarian 300x300", group="classic", peers=("scipy",))
def hungarian(lib):
    cost = np.random.default_rng(0).random((300, 300))
    if lib == "oxinet":
        from oxinet.tracking import linear_sum_assignment
        return lambda: linear_sum_assignment(cost)
    if lib == "scipy":
        try:
            from scipy.optimize import linear_sum_assignment as lsa
        except ImportError:
            return None
        return lambda: lsa(cost)
    return None
