"""Multiclass linear SVM with the Weston-Watkins hinge loss (INVENTORY F9, CS231n style).

Scores ``S = X W + b`` with X (N, D), W (D, C), b (C,). For example i with true class y_i::

    L_i = sum_{k != y_i} max(0, s_ik - s_i,y_i + delta)          (delta = 1)
    L   = (1/N) sum_i L_i + reg * sum(W^2)                        (b is not penalised)

Gradient: with margins M_ik = s_ik - s_iy_i + delta and the indicator
``G_ik = [M_ik > 0]`` for k != y_i and ``G_iy_i = -sum_{k != y_i} G_ik``::

    dW = X^T G / N + 2 reg W,     db = sum_i G_i / N

(A margin exactly at 0 is treated as inactive: the subgradient chosen there is 0.)
"""

from __future__ import annotations

import numpy as np

from oxinet.classic._validate import check_fitted, label_array, mm, positive, positive_int, real_array


def svm_loss(W, b, X, y, reg: float = 0.0, delta: float = 1.0):
    """Vectorised multiclass hinge loss and its gradient.

    W: (D, C), b: (C,), X: (N, D), y: (N,) integer classes in [0, C). Returns
    ``(loss, dW, db)`` as float, (D, C), (C,). float64.
    """
    op = "svm_loss"
    W = real_array(W, "W", op, ndim=2)
    b = real_array(b, "b", op, ndim=1)
    X = real_array(X, "X", op, ndim=2)
    y = label_array(y, "y", op, n=X.shape[0])
    D, C = W.shape
    if X.shape[1] != D:
        raise ValueError(f"{op}: 'X' has {X.shape[1]} features (shape {X.shape}) but 'W' has shape {W.shape}")
    if b.shape != (C,):
        raise ValueError(f"{op}: 'b' has shape {b.shape}, expected ({C},) to match 'W' {W.shape}")
    if y.size and (y.min() < 0 or y.max() >= C):
        raise ValueError(f"{op}: 'y' must hold classes in [0, {C}), got range [{y.min()}, {y.max()}]")
    N = X.shape[0]
    if N == 0:
        raise ValueError(f"{op}: 'X' has no rows")
    rows = np.arange(N)
    S = mm(X, W) + b
    margins = S - S[rows, y][:, None] + delta
    margins[rows, y] = 0.0
    active = margins > 0
    loss = np.where(active, margins, 0.0).sum() / N + reg * np.sum(W * W)
    G = active.astype(np.float64)
    G[rows, y] = -G.sum(axis=1)
    dW = mm(X.T, G) / N + 2.0 * reg * W
    db = G.sum(axis=0) / N
    return float(loss), dW, db


class LinearSVM:
    """Multiclass linear SVM trained by (mini-batch) stochastic gradient descent.

    Parameters: ``reg`` (L2 strength), ``lr``, ``epochs``, ``batch_size`` (None = full
    batch gradient descent), ``seed`` (initial weights and batch order), ``delta``.
    Classes are the sorted unique labels seen by ``fit`` (``classes_``).
    After ``fit``: ``W_`` (D, C), ``b_`` (C,), ``loss_history_`` (one entry per step).
    """

    def __init__(self, *, reg: float = 1e-3, lr: float = 1e-2, epochs: int = 100,
                 batch_size: int | None = 200, seed: int = 0, delta: float = 1.0):
        op = "LinearSVM"
        self.reg = positive(reg, "reg", op, allow_zero=True)
        self.lr = positive(lr, "lr", op)
        self.epochs = positive_int(epochs, "epochs", op)
        self.batch_size = None if batch_size is None else positive_int(batch_size, "batch_size", op)
        self.seed = seed
        self.delta = positive(delta, "delta", op)
        self.W_ = None
        self.b_ = None
        self.classes_ = None
        self.loss_history_ = []

    def fit(self, X, y):
        op = "LinearSVM.fit"
        X = real_array(X, "X", op, ndim=2)
        y = label_array(y, "y", op, n=X.shape[0])
        if X.shape[0] == 0:
            raise ValueError(f"{op}: 'X' has no rows")
        self.classes_, yi = np.unique(y, return_inverse=True)
        C = self.classes_.size
        if C < 2:
            raise ValueError(f"{op}: 'y' must contain at least 2 classes, got {self.classes_}")
        rng = np.random.default_rng(self.seed)
        N, D = X.shape
        W = 1e-3 * rng.standard_normal((D, C))
        b = np.zeros(C)
        bs = N if self.batch_size is None else min(self.batch_size, N)
        self.loss_history_ = []
        for _ in range(self.epochs):
            order = rng.permutation(N) if bs < N else np.arange(N)
            for start in range(0, N, bs):
                idx = order[start:start + bs]
                loss, dW, db = svm_loss(W, b, X[idx], yi[idx], self.reg, self.delta)
                self.loss_history_.append(loss)
                W -= self.lr * dW
                b -= self.lr * db
        self.W_, self.b_ = W, b
        return self

    def decision_function(self, X):
        check_fitted(self, "W_")
        X = real_array(X, "X", "LinearSVM.decision_function", ndim=2)
        if X.shape[1] != self.W_.shape[0]:
            raise ValueError(f"LinearSVM: 'X' has {X.shape[1]} features, "
                             f"the model was fitted with {self.W_.shape[0]}")
        return mm(X, self.W_) + self.b_

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def score(self, X, y) -> float:
        return float(np.mean(self.predict(X) == label_array(y, "y", "LinearSVM.score")))
