"""Logistic regression by full-batch gradient descent: binary (INVENTORY F1-F5) and softmax (F6).

Row layout (I2DL): X is (m, n_x), labels y in {0, 1} of shape (m,). The course's column
layout (X of shape (n_x, m)) is ``X.T``.

    z = X w + b,   a = sigma(z)                                    (F1)
    J = (1/m) sum_i -[y log a + (1 - y) log(1 - a)] + (l2 / 2m) ||w||^2   (F2, F11)
    dz = a - y,   dw = (1/m) X^T dz + (l2/m) w,   db = (1/m) sum dz      (F3, F4)
    w := w - lr dw,   b := b - lr db

The loss is evaluated from the logits with ``log(1 + e^z)`` written stably, so a
perfectly separated data set does not produce ``log(0)``.
"""

from __future__ import annotations

import numpy as np

from oxinet.classic._validate import check_fitted, check_xy, label_array, mm, positive, positive_int, real_array


def sigmoid(z):
    """Logistic function 1 / (1 + e^-z), evaluated without overflow for any z."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def logistic_loss_and_grad(w, b, X, y, l2: float = 0.0):
    """Mean binary cross-entropy (+ ``l2/(2m) ||w||^2``) and its gradient.

    w: (n_x,), b: float, X: (m, n_x), y: (m,) in {0, 1}. Returns ``(J, dw, db)``.
    """
    m = X.shape[0]
    z = mm(X, w[:, None])[:, 0] + b
    # -[y log sigma(z) + (1-y) log(1 - sigma(z))] = log(1 + e^z) - y z
    loss = np.logaddexp(0.0, z) - y * z
    J = loss.mean() + l2 / (2 * m) * (w @ w)
    dz = sigmoid(z) - y
    dw = mm(X.T, dz[:, None])[:, 0] / m + (l2 / m) * w
    db = dz.mean()
    return float(J), dw, float(db)


class LogisticRegression:
    """Binary logistic regression by gradient descent.

    Parameters: ``lr`` (learning rate alpha), ``n_iter`` (iterations), ``l2`` (lambda of
    F11), ``tol`` (stop when the gradient norm is below it).
    After ``fit``: ``coef_`` (n_x,), ``intercept_``, ``cost_history_`` (J per iteration).
    """

    def __init__(self, *, lr: float = 0.1, n_iter: int = 2000, l2: float = 0.0, tol: float = 1e-8):
        op = "LogisticRegression"
        self.lr = positive(lr, "lr", op)
        self.n_iter = positive_int(n_iter, "n_iter", op)
        self.l2 = positive(l2, "l2", op, allow_zero=True)
        self.tol = positive(tol, "tol", op, allow_zero=True)
        self.coef_ = None
        self.intercept_ = None
        self.cost_history_ = []

    def fit(self, X, y):
        op = "LogisticRegression.fit"
        X, yf = check_xy(X, y, op)
        yi = label_array(y, "y", op, n=X.shape[0])
        if not np.all((yi == 0) | (yi == 1)):
            raise ValueError(f"{op}: 'y' must contain only 0 and 1, got values {np.unique(yi)[:10]}")
        yf = yi.astype(np.float64)
        w = np.zeros(X.shape[1])
        b = 0.0
        self.cost_history_ = []
        for _ in range(self.n_iter):
            J, dw, db = logistic_loss_and_grad(w, b, X, yf, self.l2)
            self.cost_history_.append(J)
            if np.sqrt(dw @ dw + db * db) < self.tol:
                break
            w = w - self.lr * dw
            b = b - self.lr * db
        self.coef_ = w
        self.intercept_ = float(b)
        return self

    def decision_function(self, X):
        check_fitted(self, "coef_")
        X = real_array(X, "X", "LogisticRegression.decision_function", ndim=2)
        if X.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"LogisticRegression: 'X' has {X.shape[1]} features, "
                             f"the model was fitted with {self.coef_.shape[0]}")
        return mm(X, self.coef_[:, None])[:, 0] + self.intercept_

    def predict_proba(self, X):
        """P(y = 1 | x) for each row, shape (m,)."""
        return sigmoid(self.decision_function(X))

    def predict(self, X):
        """Labels 0/1 (1 where P(y = 1 | x) > 0.5)."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def score(self, X, y) -> float:
        """Accuracy."""
        yi = label_array(y, "y", "LogisticRegression.score")
        return float(np.mean(self.predict(X) == yi))


# ------------------------------------------------------------------ multiclass (F6)

def softmax(z, axis: int = -1):
    """Stable softmax (F6): exp(z - max z) / sum exp(z - max z)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_loss_and_grad(W, b, X, y, l2: float = 0.0):
    """Mean softmax cross-entropy (+ ``l2/(2m) ||W||_F^2``) and its gradient (F6, F11).

    W: (n_x, C), b: (C,), X: (m, n_x), y: (m,) classes in [0, C). With scores Z = X W + b and
    Y_hat = softmax(Z): ``dZ = (Y_hat - Y) / m``, ``dW = X^T dZ + (l2/m) W``, ``db = sum dZ``.
    Returns ``(J, dW, db)``.
    """
    m = X.shape[0]
    Z = mm(X, W) + b
    Zs = Z - Z.max(axis=1, keepdims=True)
    logp = Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))
    rows = np.arange(m)
    J = -logp[rows, y].mean() + l2 / (2 * m) * np.sum(W * W)
    dZ = np.exp(logp)
    dZ[rows, y] -= 1.0
    dZ /= m
    return float(J), mm(X.T, dZ) + (l2 / m) * W, dZ.sum(axis=0)


class SoftmaxRegression:
    """Multiclass logistic (softmax) regression by gradient descent; with two classes it is
    logistic regression with ``w = W[:, 1] - W[:, 0]`` (F6). Labels may be any integers
    (``classes_`` holds the sorted unique values)."""

    def __init__(self, *, lr: float = 0.1, n_iter: int = 2000, l2: float = 0.0, tol: float = 1e-8):
        op = "SoftmaxRegression"
        self.lr = positive(lr, "lr", op)
        self.n_iter = positive_int(n_iter, "n_iter", op)
        self.l2 = positive(l2, "l2", op, allow_zero=True)
        self.tol = positive(tol, "tol", op, allow_zero=True)
        self.W_ = None
        self.b_ = None
        self.cost_history_ = []

    def fit(self, X, y):
        op = "SoftmaxRegression.fit"
        X = real_array(X, "X", op, ndim=2)
        y = label_array(y, "y", op, n=X.shape[0])
        if X.shape[0] == 0:
            raise ValueError(f"{op}: 'X' has no rows")
        self.classes_, yi = np.unique(y, return_inverse=True)
        C = self.classes_.size
        W = np.zeros((X.shape[1], C))
        b = np.zeros(C)
        self.cost_history_ = []
        for _ in range(self.n_iter):
            J, dW, db = softmax_loss_and_grad(W, b, X, yi, self.l2)
            self.cost_history_.append(J)
            if np.sqrt(np.sum(dW * dW) + db @ db) < self.tol:
                break
            W -= self.lr * dW
            b -= self.lr * db
        self.W_, self.b_ = W, b
        return self

    def predict_proba(self, X):
        """(m, C) class probabilities in the order of ``classes_``."""
        check_fitted(self, "W_")
        X = real_array(X, "X", "SoftmaxRegression.predict_proba", ndim=2)
        if X.shape[1] != self.W_.shape[0]:
            raise ValueError(f"SoftmaxRegression: 'X' has {X.shape[1]} features, "
                             f"the model was fitted with {self.W_.shape[0]}")
        return softmax(mm(X, self.W_) + self.b_, axis=1)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y) -> float:
        return float(np.mean(self.predict(X) == label_array(y, "y", "SoftmaxRegression.score")))
