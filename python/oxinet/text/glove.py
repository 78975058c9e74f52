"""GloVe (INVENTORY F58): weighted least squares on log co-occurrence counts,

    J = sum_{i,j: X_ij > 0} f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2
    f(x) = (x / x_max)^alpha for x < x_max, else 1      (f(0) = 0)

trained with AdaGrad on mini-batches of the non-zero entries; the final vectors are
``W + W~`` (both sets summed: they play symmetric roles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oxinet.data._rng import make_generator

__all__ = ["cooccurrence_matrix", "glove_weight", "glove_loss_grad", "train_glove", "GloveResult"]


def cooccurrence_matrix(sentences, vocab_size: int, window: int = 5, distance_weighting: bool = True,
                        symmetric: bool = True, ignore=()) -> np.ndarray:
    """Dense ``(V, V)`` float64 co-occurrence counts: ``X[i, j]`` adds ``1/d`` (or 1 without
    ``distance_weighting``) when word j is ``d <= window`` positions after word i (and,
    with ``symmetric``, before it)."""
    who = "cooccurrence_matrix"
    if window < 1:
        raise ValueError(f"{who}: 'window' must be >= 1, got {window}")
    X = np.zeros((vocab_size, vocab_size))
    ign = np.asarray(list(ignore), np.int64)
    for s in sentences:
        s = np.asarray(s, np.int64).ravel()
        if ign.size:
            s = s[~np.isin(s, ign)]
        if s.size and (s.min() < 0 or s.max() >= vocab_size):
            raise ValueError(f"{who}: token ids must lie in [0, {vocab_size}), got {s.min()}..{s.max()}")
        for d in range(1, min(window, s.size - 1) + 1):
            w = 1.0 / d if distance_weighting else 1.0
            np.add.at(X, (s[:-d], s[d:]), w)
            if symmetric:
                np.add.at(X, (s[d:], s[:-d]), w)
    return X


def glove_weight(x, x_max: float = 100.0, alpha: float = 0.75) -> np.ndarray:
    """f(x) = (x/x_max)^alpha below x_max, 1 above; f(0) = 0."""
    x = np.asarray(x, np.float64)
    return np.where(x < x_max, (np.maximum(x, 0) / x_max) ** alpha, 1.0)


def glove_loss_grad(W, Wt, b, bt, rows, cols, x, x_max: float = 100.0, alpha: float = 0.75):
    """J over the listed entries ``(rows[k], cols[k], x[k])`` (x > 0) and its gradients
    ``(J, dW, dWt, db, dbt)`` (dense, shaped like the parameters)."""
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    x = np.asarray(x, np.float64)
    if (x <= 0).any():
        raise ValueError("glove_loss_grad: 'x' must hold positive counts (log X is undefined at 0)")
    f = glove_weight(x, x_max, alpha)
    wi, wj = W[rows], Wt[cols]
    diff = (wi * wj).sum(-1) + b[rows] + bt[cols] - np.log(x)
    J = float((f * diff**2).sum())
    g = 2.0 * f * diff
    dW, dWt = np.zeros_like(W), np.zeros_like(Wt)
    db, dbt = np.zeros_like(b), np.zeros_like(bt)
    np.add.at(dW, rows, g[:, None] * wj)
    np.add.at(dWt, cols, g[:, None] * wi)
    np.add.at(db, rows, g)
    np.add.at(dbt, cols, g)
    return J, dW, dWt, db, dbt


@dataclass
class GloveResult:
    vectors: np.ndarray   # W + W~  (V, D)
    W: np.ndarray
    W_tilde: np.ndarray
    losses: list          # J / (number of non-zero entries) per epoch


def train_glove(X, dim: int = 50, epochs: int = 50, lr: float = 0.05, x_max: float = 100.0, alpha: float = 0.75,
                batch_size: int = 4096, seed=0) -> GloveResult:
    """Fit GloVe to the co-occurrence matrix ``X`` with AdaGrad (initial step ``lr``)."""
    who = "train_glove"
    X = np.asarray(X, np.float64)
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise ValueError(f"{who}: 'X' must be a square (V, V) matrix, got shape {X.shape}")
    rng = make_generator(seed, who)
    v = X.shape[0]
    rows, cols = np.nonzero(X > 0)
    vals = X[rows, cols]
    params = [(rng.random((v, dim)) - 0.5) / dim, (rng.random((v, dim)) - 0.5) / dim, np.zeros(v), np.zeros(v)]
    acc = [np.full_like(p, 1e-8) for p in params]
    losses = []
    for _ in range(epochs):
        perm = rng.permutation(rows.size)
        total = 0.0
        for s in range(0, rows.size, batch_size):
            k = perm[s:s + batch_size]
            J, *grads = glove_loss_grad(*params, rows[k], cols[k], vals[k], x_max, alpha)
            total += J
            for p, g, a in zip(params, grads, acc):
                a += g * g
                p -= lr * g / np.sqrt(a)
        losses.append(total / max(rows.size, 1))
    W, Wt = params[0], params[1]
    return GloveResult(W + Wt, W, Wt, losses)
