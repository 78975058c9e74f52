"""Linear regression: closed-form normal equations (optionally ridge) and gradient descent.

Model (INVENTORY F10, I2DL row layout): ``y_hat = X @ w + b`` with X of shape (n, d).

Objective minimised by both solvers (``l2`` is the ridge strength, the intercept is not
penalised)::

    J(w, b) = (1/n) * ( ||X w + b - y||^2 + l2 * ||w||^2 )

Normal equations (after centring X and y when fitting an intercept, which removes b)::

    (X^T X + l2 I) w = X^T y,     b = mean(y) - mean(X) @ w

solved with ``numpy.linalg.solve`` (a Cholesky-class factorisation, never an explicit
inverse); if ``X^T X`` is singular and ``l2 == 0`` the minimum-norm least-squares solution
from ``numpy.linalg.lstsq`` is used instead.

Maximum-likelihood view: if ``y_i = x_i w + b + eps_i`` with ``eps_i ~ N(0, sigma^2)``
independent, the log-likelihood is::

    log p(y | X, w, b, sigma^2) = -(n/2) log(2 pi sigma^2) - ||y - X w - b||^2 / (2 sigma^2)

For any sigma it is maximised in (w, b) by minimising the squared error, so the MLE of
(w, b) is the least-squares solution; setting d/d sigma^2 = 0 then gives the MLE noise
variance ``sigma^2_ML = ||y - X w - b||^2 / n`` (biased; the unbiased estimate divides by
``n - p`` with p fitted parameters). ``fit`` stores it as ``noise_variance_`` and
``log_likelihood`` evaluates the expression above. Ridge is the MAP estimate under the
prior ``w ~ N(0, (sigma^2 / l2) I)``: the log-prior adds ``-l2 ||w||^2 / (2 sigma^2)``.
"""

from __future__ import annotations

import numpy as np

from oxinet.classic._validate import check_fitted, check_xy, mm, positive, positive_int, real_array


def _prepare(X, y, op):
    X, y = check_xy(X, y, op, y_ndim=(1, 2))
    return X, y


def normal_equation(X, y, *, l2: float = 0.0, fit_intercept: bool = True):
    """Least-squares / ridge weights from the normal equations.

    X: (n, d); y: (n,) or (n, k). Returns ``(w, b)`` with w of shape (d,) or (d, k) and b a
    float or (k,) array (0 when ``fit_intercept`` is False). float64.
    """
    op = "normal_equation"
    X, y = _prepare(X, y, op)
    l2 = positive(l2, "l2", op, allow_zero=True)
    if fit_intercept:
        x_mean = X.mean(axis=0)
        y_mean = y.mean(axis=0)
        Xc = X - x_mean
        yc = y - y_mean
    else:
        Xc, yc = X, y
    d = X.shape[1]
    gram = mm(Xc.T, Xc)
    rhs = mm(Xc.T, yc if yc.ndim == 2 else yc[:, None])
    if l2 > 0:
        gram[np.diag_indices(d)] += l2
    try:
        w = np.linalg.solve(gram, rhs)
        # a numerically singular system "solves" into garbage: check the residual scale
        if not np.all(np.isfinite(w)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        if l2 > 0:
            raise
        w = np.linalg.lstsq(Xc, yc if yc.ndim == 2 else yc[:, None], rcond=None)[0]
    if y.ndim == 1:
        w = w[:, 0]
    if fit_intercept:
        b = y_mean - x_mean @ w
    else:
        b = np.zeros(y.shape[1:]) if y.ndim == 2 else 0.0
    return w, (float(b) if np.ndim(b) == 0 else b)


def mse_loss_and_grad(w, b, X, y, l2: float = 0.0):
    """Ridge objective ``J = (||X w + b - y||^2 + l2 ||w||^2) / n`` and its gradient.

    Returns ``(J, dw, db)``; ``dw = (2/n) (X^T r + l2 w)``, ``db = (2/n) sum(r)`` with
    residual ``r = X w + b - y``. X: (n, d), w: (d,), y: (n,). float64.
    """
    n = X.shape[0]
    r = mm(X, w[:, None])[:, 0] + b - y
    loss = (r @ r + l2 * (w @ w)) / n
    dw = (2.0 / n) * (mm(X.T, r[:, None])[:, 0] + l2 * w)
    db = (2.0 / n) * r.sum()
    return float(loss), dw, float(db)


class LinearRegression:
    """Linear (ridge) regression fitted by the normal equations or by gradient descent.

    Parameters
    ----------
    l2: ridge strength (>= 0), see the module docstring for the objective.
    fit_intercept: learn the unpenalised bias b.
    solver: ``"normal"`` (closed form) or ``"gd"`` (full-batch gradient descent on J).
    lr, n_iter, tol: gradient-descent step size, iteration cap, and stop when the
        gradient norm falls below ``tol``. Ignored by ``"normal"``.

    After ``fit``: ``coef_`` (d,), ``intercept_`` (float), ``noise_variance_`` (sigma^2
    MLE), ``loss_history_`` (GD only).
    """

    def __init__(self, *, l2: float = 0.0, fit_intercept: bool = True, solver: str = "normal",
                 lr: float = 0.1, n_iter: int = 5000, tol: float = 1e-10):
        op = "LinearRegression"
        if solver not in ("normal", "gd"):
            raise ValueError(f"{op}: 'solver' must be 'normal' or 'gd', got {solver!r}")
        self.l2 = positive(l2, "l2", op, allow_zero=True)
        self.fit_intercept = bool(fit_intercept)
        self.solver = solver
        self.lr = positive(lr, "lr", op)
        self.n_iter = positive_int(n_iter, "n_iter", op)
        self.tol = positive(tol, "tol", op, allow_zero=True)
        self.coef_ = None
        self.intercept_ = None
        self.noise_variance_ = None
        self.loss_history_ = []

    def fit(self, X, y):
        op = "LinearRegression.fit"
        X, y = check_xy(X, y, op)
        if self.solver == "normal":
            w, b = normal_equation(X, y, l2=self.l2, fit_intercept=self.fit_intercept)
        else:
            w = np.zeros(X.shape[1])
            b = 0.0
            self.loss_history_ = []
            for _ in range(self.n_iter):
                loss, dw, db = mse_loss_and_grad(w, b, X, y, self.l2)
                self.loss_history_.append(loss)
                if not self.fit_intercept:
                    db = 0.0
                if np.sqrt(dw @ dw + db * db) < self.tol:
                    break
                w = w - self.lr * dw
                b = b - self.lr * db
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"{op}: gradient descent diverged (loss {loss}); lower 'lr' (now {self.lr})")
        self.coef_ = w
        self.intercept_ = float(b)
        r = y - self.predict(X)
        self.noise_variance_ = float(r @ r / X.shape[0])
        return self

    def predict(self, X):
        check_fitted(self, "coef_")
        X = real_array(X, "X", "LinearRegression.predict", ndim=2)
        if X.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"LinearRegression.predict: 'X' has {X.shape[1]} features, "
                             f"the model was fitted with {self.coef_.shape[0]}")
        return mm(X, self.coef_[:, None])[:, 0] + self.intercept_

    def log_likelihood(self, X, y, noise_variance: float | None = None) -> float:
        """Gaussian log-likelihood of ``y`` given ``X`` (sigma^2 defaults to the MLE)."""
        X, y = check_xy(X, y, "LinearRegression.log_likelihood")
        s2 = self.noise_variance_ if noise_variance is None else positive(
            noise_variance, "noise_variance", "LinearRegression.log_likelihood")
        r = y - self.predict(X)
        n = X.shape[0]
        return float(-0.5 * n * np.log(2 * np.pi * s2) - (r @ r) / (2 * s2))

    def score(self, X, y) -> float:
        """Coefficient of determination R^2."""
        X, y = check_xy(X, y, "LinearRegression.score")
        r = y - self.predict(X)
        tot = ((y - y.mean()) ** 2).sum()
        return float(1.0 - (r @ r) / tot) if tot > 0 else 0.0
