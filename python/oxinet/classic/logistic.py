"""Binary logistic regression trained by full-batch gradient descent (INVENTORY F1-F4).

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
