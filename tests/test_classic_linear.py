"""Linear and logistic regression against closed forms, lstsq and finite differences."""

import numpy as np
import pytest

from helpers import check_grad
from oxinet.classic import (LinearRegression, LogisticRegression, SoftmaxRegression, logistic_loss_and_grad,
                            mse_loss_and_grad, normal_equation, sigmoid, softmax, softmax_loss_and_grad)
from oxinet.optimize import minimize_lbfgs


def _data(n=200, d=5, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = X @ w + 0.7 + noise * rng.standard_normal(n)
    return X, y, w


def test_normal_equation_matches_lstsq_with_intercept():
    X, y, _ = _data()
    w, b = normal_equation(X, y)
    A = np.column_stack([X, np.ones(len(X))])
    ref = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(w, ref[:-1], rtol=1e-10, atol=1e-12)
    assert b == pytest.approx(ref[-1], abs=1e-12)


def test_normal_equation_without_intercept_and_multi_output():
    X, y, _ = _data(d=3)
    Y = np.column_stack([y, 2 * y - X[:, 0]])
    W, b = normal_equation(X, Y, fit_intercept=False)
    np.testing.assert_allclose(W, np.linalg.lstsq(X, Y, rcond=None)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(b, np.zeros(2))


def test_ridge_matches_augmented_lstsq():
    # ridge with an unpenalised intercept == least squares on centred data stacked with sqrt(l2) I
    X, y, _ = _data(n=50, d=4)
    l2 = 3.0
    w, b = normal_equation(X, y, l2=l2)
    Xc, yc = X - X.mean(0), y - y.mean()
    A = np.vstack([Xc, np.sqrt(l2) * np.eye(4)])
    rhs = np.concatenate([yc, np.zeros(4)])
    ref = np.linalg.lstsq(A, rhs, rcond=None)[0]
    np.testing.assert_allclose(w, ref, rtol=1e-10)
    assert b == pytest.approx(y.mean() - X.mean(0) @ ref)
    # the ridge solution shrinks the weights
    w0, _ = normal_equation(X, y)
    assert np.linalg.norm(w) < np.linalg.norm(w0)


def test_rank_deficient_falls_back_to_min_norm():
    X, y, _ = _data(n=30, d=3)
    X = np.column_stack([X, X[:, 0]])  # duplicate column: X^T X singular
    w, b = normal_equation(X, y, fit_intercept=False)
    np.testing.assert_allclose(X @ w, X @ np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-8)


@pytest.mark.parametrize("l2", [0.0, 2.0])
def test_gradient_descent_reaches_normal_equation_solution(l2):
    X, y, _ = _data(n=100, d=4)
    closed = LinearRegression(l2=l2).fit(X, y)
    gd = LinearRegression(l2=l2, solver="gd", lr=0.2, n_iter=5000, tol=1e-12).fit(X, y)
    np.testing.assert_allclose(gd.coef_, closed.coef_, atol=1e-8)
    assert gd.intercept_ == pytest.approx(closed.intercept_, abs=1e-8)
    assert gd.loss_history_[-1] <= gd.loss_history_[0]


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_mse_gradient_finite_differences(l2):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((7, 3)), rng.standard_normal(7)
    w, b = rng.standard_normal(3), np.array([0.3])
    _, dw, db = mse_loss_and_grad(w, b[0], X, y, l2)
    check_grad(lambda: mse_loss_and_grad(w, b[0], X, y, l2)[0], w, dw)
    check_grad(lambda: mse_loss_and_grad(w, b[0], X, y, l2)[0], b, np.array([db]))


def test_mle_noise_variance_and_likelihood():
    sigma = 0.5
    X, y, w_true = _data(n=20000, d=3, noise=sigma, seed=3)
    m = LinearRegression().fit(X, y)
    A = np.column_stack([X, np.ones(len(X))])
    rss = np.linalg.lstsq(A, y, rcond=None)[1][0]
    # the MLE of sigma^2 is RSS / n (not / (n - p))
    assert m.noise_variance_ == pytest.approx(rss / len(y), rel=1e-10)
    assert m.noise_variance_ == pytest.approx(sigma ** 2, rel=0.05)
    np.testing.assert_allclose(m.coef_, w_true, atol=0.02)
    # the log-likelihood is maximal at the MLE variance and at the least-squares weights
    ll = m.log_likelihood(X, y)
    n = len(y)
    assert ll == pytest.approx(-0.5 * n * np.log(2 * np.pi * rss / n) - 0.5 * n, rel=1e-10)
    for s2 in (0.9 * m.noise_variance_, 1.1 * m.noise_variance_):
        assert m.log_likelihood(X, y, noise_variance=s2) < ll
    m2 = LinearRegression().fit(X, y)
    m2.coef_ = m2.coef_ + 0.01
    assert m2.log_likelihood(X, y, noise_variance=m.noise_variance_) < ll


def test_gradient_descent_divergence_is_reported():
    X, y, _ = _data(n=50, d=3)
    with pytest.raises(FloatingPointError, match="'lr'"):
        with np.errstate(over="ignore", invalid="ignore"):
            LinearRegression(solver="gd", lr=50.0, n_iter=500).fit(10 * X, y)


def test_linear_regression_bad_input():
    with pytest.raises(ValueError, match="'solver'"):
        LinearRegression(solver="qr")
    with pytest.raises(ValueError, match="'l2'"):
        LinearRegression(l2=-1)
    with pytest.raises(ValueError, match="'y'"):
        LinearRegression().fit(np.ones((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="'X'"):
        LinearRegression().fit(np.ones(4), np.ones(4))
    with pytest.raises(TypeError, match="'X'"):
        LinearRegression().fit(np.array([["a", "b"]]), np.ones(1))
    with pytest.raises(ValueError, match="'X'"):
        LinearRegression().fit(np.ones((4, 2)), np.ones(4)).predict(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        LinearRegression().predict(np.ones((2, 2)))


# ------------------------------------------------------------------ logistic regression

def _loop_cost_and_grads(w, b, X, y):
    """F3 non-vectorised epoch, written as in the course notes."""
    m = X.shape[0]
    J, dw, db = 0.0, np.zeros_like(w), 0.0
    for i in range(m):
        z = w @ X[i] + b
        a = 1 / (1 + np.exp(-z))
        J += -(y[i] * np.log(a) + (1 - y[i]) * np.log(1 - a))
        dz = a - y[i]
        dw += X[i] * dz
        db += dz
    return J / m, dw / m, db / m


def test_logistic_vectorised_matches_course_loop():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 3)), (rng.random(20) < 0.5).astype(float)
    w, b = rng.standard_normal(3), 0.2
    J, dw, db = logistic_loss_and_grad(w, b, X, y)
    J_ref, dw_ref, db_ref = _loop_cost_and_grads(w, b, X, y)
    assert J == pytest.approx(J_ref, rel=1e-12)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12)
    assert db == pytest.approx(db_ref, rel=1e-12)


@pytest.mark.parametrize("l2", [0.0, 1.0])
def test_logistic_gradient_finite_differences(l2):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((9, 4)), (rng.random(9) < 0.5).astype(float)
    w, b = rng.standard_normal(4), np.array([-0.1])
    _, dw, db = logistic_loss_and_grad(w, b[0], X, y, l2)
    check_grad(lambda: logistic_loss_and_grad(w, b[0], X, y, l2)[0], w, dw)
    check_grad(lambda: logistic_loss_and_grad(w, b[0], X, y, l2)[0], b, np.array([db]))


def test_sigmoid_is_stable_and_exact():
    z = np.array([-1000.0, -5.0, 0.0, 5.0, 1000.0])
    s = sigmoid(z)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s[1:4], 1 / (1 + np.exp(-z[1:4])), rtol=1e-15)
    assert s[0] == 0.0 and s[-1] == 1.0


def test_logistic_regression_reaches_the_optimum():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 2))
    p = 1 / (1 + np.exp(-(X @ np.array([2.0, -1.0]) + 0.5)))
    y = (rng.random(300) < p).astype(np.int64)
    model = LogisticRegression(lr=1.0, n_iter=3000, l2=1.0).fit(X, y)
    # reference optimum of the same objective by L-BFGS
    def fg(theta):
        J, dw, db = logistic_loss_and_grad(theta[:2], theta[2], X, y.astype(float), 1.0)
        return J, np.append(dw, db)
    ref = minimize_lbfgs(fg, None, np.zeros(3), gtol=1e-12).x
    np.testing.assert_allclose(np.append(model.coef_, model.intercept_), ref, atol=1e-6)
    assert model.cost_history_[-1] < model.cost_history_[0]
    assert model.score(X, y) > 0.75
    np.testing.assert_array_equal(model.predict(X), (model.predict_proba(X) > 0.5).astype(int))


def test_logistic_bad_input():
    with pytest.raises(ValueError, match="'y'"):
        LogisticRegression().fit(np.ones((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="'y'"):
        LogisticRegression().fit(np.ones((3, 2)), np.array([0.5, 1, 0]))
    with pytest.raises(ValueError, match="'lr'"):
        LogisticRegression(lr=0)


# ------------------------------------------------------------------ softmax regression (F6)

@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_softmax_gradient_finite_differences(l2):
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 4, 8)
    W, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    _, dW, db = softmax_loss_and_grad(W, b, X, y, l2)
    check_grad(lambda: softmax_loss_and_grad(W, b, X, y, l2)[0], W, dW)
    check_grad(lambda: softmax_loss_and_grad(W, b, X, y, l2)[0], b, db)


def test_softmax_loss_matches_definition_and_two_class_case():
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((10, 2)), rng.integers(0, 2, 10)
    W, b = rng.standard_normal((2, 2)), rng.standard_normal(2)
    J, _, _ = softmax_loss_and_grad(W, b, X, y)
    Z = X @ W + b
    ref = np.mean([-np.log(np.exp(Z[i, y[i]]) / np.exp(Z[i]).sum()) for i in range(10)])
    assert J == pytest.approx(ref, rel=1e-12)
    # C = 2 is logistic regression with w = W1 - W0, b = b1 - b0
    Jl, _, _ = logistic_loss_and_grad(W[:, 1] - W[:, 0], b[1] - b[0], X, y.astype(float))
    assert J == pytest.approx(Jl, rel=1e-12)
    np.testing.assert_allclose(softmax(np.array([[1000.0, 0.0]])), [[1.0, 0.0]])


def test_softmax_regression_fits_three_classes():
    rng = np.random.default_rng(8)
    centres = np.array([[0, 0], [3, 0], [0, 3]], float)
    y = rng.integers(0, 3, 300)
    X = centres[y] + 0.5 * rng.standard_normal((300, 2))
    m = SoftmaxRegression(lr=0.5, n_iter=500).fit(X, y * 2 + 1)
    assert m.score(X, y * 2 + 1) > 0.95
    np.testing.assert_allclose(m.predict_proba(X).sum(axis=1), 1.0)
    assert m.cost_history_[-1] < m.cost_history_[0]
    with pytest.raises(ValueError, match="'X'"):
        m.predict(np.ones((2, 3)))
