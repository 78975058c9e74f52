"""k-nearest neighbours with L1 / L2 distances.

Distances between the rows of A (n, d) and B (m, d):

* ``"l2"``: ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a . b``; the n x m cross term is one
  GEMM (``oxinet.ops.matmul``), so the cost is that of a matrix product. Rounding can make
  the expansion slightly negative for (near-)equal points; it is clipped at 0.
* ``"l1"``: ``sum |a - b|`` needs the (rows, m, d) difference tensor; it is built for a
  block of rows of A at a time so that the temporary stays under ``chunk_elements``
  numbers.

Prediction: the k training points with the smallest distance (ties in distance go to the
lower training index), then a majority vote. A tie in the vote goes to the tied label
whose nearest member is closest (so k = 2 with two different labels behaves like k = 1),
which makes the result deterministic and independent of label values.
"""

from __future__ import annotations

import numpy as np

from oxinet.classic._validate import check_fitted, label_array, positive_int
from oxinet.ops import matmul
from oxinet.ops._checks import as_float_array, result_dtype

_METRICS = ("l1", "l2")


def _check_metric(metric, op):
    if metric not in _METRICS:
        raise ValueError(f"{op}: 'metric' must be one of {_METRICS}, got {metric!r}")


def _as_points(x, name, op):
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    arr = as_float_array(arr, name, op)
    if arr.ndim != 2:
        raise ValueError(f"{op}: '{name}' must be 2-D (points, features), got shape {arr.shape}")
    return arr


def pairwise_distances(A, B, metric: str = "l2", *, squared: bool = False,
                       chunk_elements: int = 1 << 22) -> np.ndarray:
    """Distances between every row of A (n, d) and every row of B (m, d): shape (n, m).

    float32 stays float32, float64 stays float64 (mixed promotes to float64; integer
    inputs are converted to float64). ``squared`` returns squared L2 distances (no sqrt).
    """
    op = "pairwise_distances"
    _check_metric(metric, op)
    A = _as_points(A, "A", op)
    B = _as_points(B, "B", op)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"{op}: 'A' has {A.shape[1]} features (shape {A.shape}) but 'B' has "
                         f"{B.shape[1]} (shape {B.shape})")
    if squared and metric != "l2":
        raise ValueError(f"{op}: 'squared' applies to metric='l2' only, got metric={metric!r}")
    chunk_elements = positive_int(chunk_elements, "chunk_elements", op)
    dtype = result_dtype(A, B)
    A = A.astype(dtype, copy=False)
    B = B.astype(dtype, copy=False)
    n, m = A.shape[0], B.shape[0]
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype)
    if metric == "l2":
        a2 = np.einsum("ij,ij->i", A, A)
        b2 = np.einsum("ij,ij->i", B, B)
        d2 = matmul(A, B.T)
        d2 *= -2
        d2 += a2[:, None]
        d2 += b2[None, :]
        np.maximum(d2, 0, out=d2)
        return d2 if squared else np.sqrt(d2, out=d2)
    out = np.empty((n, m), dtype)
    rows = min(n, max(1, chunk_elements // max(1, m * A.shape[1])))
    buf = np.empty((rows, m, A.shape[1]), dtype)  # one reused block of differences
    for s in range(0, n, rows):
        blk = A[s:s + rows]
        tmp = buf[:blk.shape[0]]
        np.subtract(blk[:, None, :], B[None, :, :], out=tmp)
        np.abs(tmp, out=tmp)
        tmp.sum(axis=2, out=out[s:s + rows])
    return out


def k_smallest(d: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest entries of each row of ``d`` (n, m), ordered by
    (value, index): exactly what a stable argsort's first k columns are, in O(m) per row
    (a partition finds the k-th value; among entries equal to it the lowest indices win)."""
    n, m = d.shape
    if k >= m:
        return np.argsort(d, axis=1, kind="stable")[:, :k]
    kth = np.partition(d, k - 1, axis=1)[:, k - 1:k]
    if np.isnan(kth).any():  # NaN distances (NaN inputs): argsort puts them last
        return np.argsort(d, axis=1, kind="stable")[:, :k]
    less = d < kth
    n_less = less.sum(axis=1, keepdims=True)
    equal = d == kth
    take = less | (equal & (np.cumsum(equal, axis=1) <= k - n_less))
    cols = np.nonzero(take)[1].reshape(n, k)         # row-major: ascending index per row
    vals = np.take_along_axis(d, cols, axis=1)
    order = np.argsort(vals, axis=1, kind="stable")  # ties keep the ascending index order
    return np.take_along_axis(cols, order, axis=1)


def _vote(neigh_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority vote per row of (n, k) label indices; ties to the label seen first."""
    n, k = neigh_labels.shape
    rows = np.repeat(np.arange(n), k)
    counts = np.zeros((n, n_classes), np.int64)
    np.add.at(counts, (rows, neigh_labels.ravel()), 1)
    first = np.full((n, n_classes), k, np.int64)
    ranks = np.tile(np.arange(k), n)
    np.minimum.at(first, (rows, neigh_labels.ravel()), ranks)
    return np.argmax(counts * (k + 1) - first, axis=1)


class KNearestNeighbors:
    """k-NN classifier. ``fit`` only stores the data; ``predict`` does the work.

    Parameters: ``k`` (neighbours), ``metric`` ("l1" or "l2"), ``chunk_rows`` (test points
    handled per block, bounding the (rows, n_train) distance block in memory).
    """

    def __init__(self, k: int = 1, metric: str = "l2", *, chunk_rows: int = 1024):
        op = "KNearestNeighbors"
        self.k = positive_int(k, "k", op)
        _check_metric(metric, op)
        self.metric = metric
        self.chunk_rows = positive_int(chunk_rows, "chunk_rows", op)
        self.X_ = None

    def fit(self, X, y):
        op = "KNearestNeighbors.fit"
        X = _as_points(X, "X", op)
        y = label_array(y, "y", op, n=X.shape[0])
        if X.shape[0] == 0:
            raise ValueError(f"{op}: 'X' has no rows")
        self.classes_, self.y_idx_ = np.unique(y, return_inverse=True)
        self.X_ = X
        return self

    def kneighbors(self, X, k: int | None = None):
        """(distances, indices) of the k nearest training points, each (n, k), nearest first."""
        check_fitted(self, "X_")
        op = "KNearestNeighbors.kneighbors"
        k = self.k if k is None else positive_int(k, "k", op)
        if k > self.X_.shape[0]:
            raise ValueError(f"{op}: 'k' = {k} exceeds the {self.X_.shape[0]} training points")
        X = _as_points(X, "X", op)
        if X.shape[1] != self.X_.shape[1]:
            raise ValueError(f"{op}: 'X' has {X.shape[1]} features, the training data has {self.X_.shape[1]}")
        dists, idxs = [], []
        for s in range(0, X.shape[0], self.chunk_rows):
            d = pairwise_distances(X[s:s + self.chunk_rows], self.X_, self.metric)
            order = k_smallest(d, k)
            idxs.append(order)
            dists.append(np.take_along_axis(d, order, axis=1))
        if not idxs:
            return np.zeros((0, k), self.X_.dtype), np.zeros((0, k), np.int64)
        return np.concatenate(dists), np.concatenate(idxs)

    def predict(self, X, k: int | None = None):
        _, idx = self.kneighbors(X, k)
        if idx.shape[0] == 0:
            return self.classes_[:0]
        return self.classes_[_vote(self.y_idx_[idx], self.classes_.size)]

    def score(self, X, y) -> float:
        return float(np.mean(self.predict(X) == label_array(y, "y", "KNearestNeighbors.score")))
