"""Newton, Gauss-Newton, Levenberg-Marquardt, Armijo line search and L-BFGS."""

import numpy as np
import pytest

from oxinet.optimize import (LBFGSMemory, backtracking_line_search, gauss_newton, levenberg_marquardt,
                             minimize_lbfgs, newton, rosenbrock, rosenbrock_grad, rosenbrock_hess,
                             strong_wolfe_line_search, two_loop)


def test_rosenbrock_derivatives():
    from helpers import numeric_grad
    x = np.array([-0.7, 1.3, 0.4])
    g = numeric_grad(lambda: rosenbrock(x), x)
    np.testing.assert_allclose(rosenbrock_grad(x), g, rtol=1e-6, atol=1e-6)
    H = np.stack([numeric_grad(lambda i=i: rosenbrock_grad(x)[i], x) for i in range(3)])
    np.testing.assert_allclose(rosenbrock_hess(x), H, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("with_f", [True, False])
def test_newton_rosenbrock(with_f):
    res = newton(rosenbrock_grad, rosenbrock_hess, [-1.2, 1.0], f=rosenbrock if with_f else None)
    assert res.converged
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-6)
    if with_f:
        assert all(b <= a for a, b in zip(res.history, res.history[1:]))  # monotone with line search


def test_newton_one_step_on_a_quadratic():
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    res = newton(lambda x: A @ x - b, lambda x: A, np.zeros(2), max_iter=1, tol=0)
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-14)


def test_newton_handles_indefinite_hessian():
    # f = x^4/4 - x^2/2 + y^2 has a saddle at 0; starting near it must still descend to x = +-1
    f = lambda z: z[0] ** 4 / 4 - z[0] ** 2 / 2 + z[1] ** 2  # noqa: E731
    g = lambda z: np.array([z[0] ** 3 - z[0], 2 * z[1]])  # noqa: E731
    h = lambda z: np.array([[3 * z[0] ** 2 - 1, 0], [0, 2.0]])  # noqa: E731
    res = newton(g, h, [0.1, 0.5], f=f)
    np.testing.assert_allclose(np.abs(res.x), [1.0, 0.0], atol=1e-8)


@pytest.mark.parametrize("line_search", ["armijo", "strong_wolfe"])
@pytest.mark.parametrize("n", [2, 10])
def test_lbfgs_rosenbrock(n, line_search):
    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    res = minimize_lbfgs(rosenbrock, rosenbrock_grad, x0, gtol=1e-10, max_iter=2000, line_search=line_search)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, np.ones(n), atol=1e-6)


def test_lbfgs_accepts_value_and_gradient_callable():
    A = np.diag([1.0, 10.0, 100.0])
    res = minimize_lbfgs(lambda x: (0.5 * x @ A @ x, A @ x), None, np.ones(3), gtol=1e-12)
    np.testing.assert_allclose(res.x, 0, atol=1e-10)


def _bfgs_inverse(s_list, y_list):
    """Explicit BFGS inverse-Hessian recursion from H0 = gamma I."""
    n = s_list[0].size
    gamma = (s_list[-1] @ y_list[-1]) / (y_list[-1] @ y_list[-1])
    H = gamma * np.eye(n)
    for s, y in zip(s_list, y_list):
        rho = 1 / (y @ s)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


def test_two_loop_equals_explicit_bfgs_matrix():
    rng = np.random.default_rng(0)
    n = 6
    M = rng.standard_normal((n, n))
    A = M @ M.T + n * np.eye(n)  # SPD: y = A s has positive curvature
    s_list = [rng.standard_normal(n) for _ in range(4)]
    y_list = [A @ s for s in s_list]
    g = rng.standard_normal(n)
    np.testing.assert_allclose(two_loop(g, s_list, y_list), _bfgs_inverse(s_list, y_list) @ g, rtol=1e-10)
    mem = LBFGSMemory(m=2)
    for s, y in zip(s_list, y_list):
        assert mem.update(s, y)
    assert len(mem) == 2  # only the newest m pairs are kept
    np.testing.assert_allclose(mem.direction(g), -_bfgs_inverse(s_list[2:], y_list[2:]) @ g, rtol=1e-10)
    assert not mem.update(s_list[0], -y_list[0])  # negative curvature is skipped
    mem.reset()
    np.testing.assert_array_equal(mem.direction(g), -g)


def test_line_search_satisfies_armijo():
    x = np.array([-1.2, 1.0])
    g = rosenbrock_grad(x)
    fx = rosenbrock(x)
    for c1 in (1e-4, 0.3):
        ls = backtracking_line_search(rosenbrock, x, -g, fx, g, c1=c1)
        assert ls.success and 0 < ls.alpha <= 1
        assert ls.fun == rosenbrock(x - ls.alpha * g)
        assert ls.fun <= fx + c1 * ls.alpha * (g @ -g)
        # maximal: the previous (twice larger) trial step violated the condition
        if ls.alpha < 1:
            big = 2 * ls.alpha
            assert rosenbrock(x - big * g) > fx + c1 * big * (g @ -g)


@pytest.mark.parametrize("alpha0", [1e-4, 1.0, 50.0])
def test_strong_wolfe_conditions_hold(alpha0):
    rng = np.random.default_rng(0)
    fg = lambda z: (rosenbrock(z), rosenbrock_grad(z))  # noqa: E731
    c1, c2 = 1e-4, 0.9
    for _ in range(20):
        x = rng.uniform(-2, 2, 3)
        g = rosenbrock_grad(x)
        p = -g / np.linalg.norm(g) + 0.3 * rng.standard_normal(3)
        if g @ p >= 0:
            p = -g
        ls = strong_wolfe_line_search(fg, x, p, rosenbrock(x), g, alpha0=alpha0, c1=c1, c2=c2)
        assert ls.success
        xa = x + ls.alpha * p
        assert ls.fun == pytest.approx(rosenbrock(xa), rel=1e-12)
        np.testing.assert_allclose(ls.grad, rosenbrock_grad(xa), rtol=1e-12)
        assert ls.fun <= rosenbrock(x) + c1 * ls.alpha * (g @ p)
        assert abs(ls.grad @ p) <= c2 * abs(g @ p)
    with pytest.raises(ValueError, match="'c2'"):
        strong_wolfe_line_search(fg, x, p, rosenbrock(x), g, c1=0.5, c2=0.4)


def test_line_search_rejects_ascent_direction():
    x = np.array([0.0, 0.0])
    g = rosenbrock_grad(x)
    with pytest.raises(ValueError, match="'p'"):
        backtracking_line_search(rosenbrock, x, g, None, g)
    with pytest.raises(ValueError, match="'c1'"):
        backtracking_line_search(rosenbrock, x, -g, None, g, c1=1.5)


def _curve_problem(seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 2, 50)
    y = 2.5 * np.exp(-1.3 * x) + noise * rng.standard_normal(x.size)
    res = lambda p: p[0] * np.exp(p[1] * x) - y  # noqa: E731
    jac = lambda p: np.column_stack([np.exp(p[1] * x), p[0] * x * np.exp(p[1] * x)])  # noqa: E731
    return x, y, res, jac


@pytest.mark.parametrize("solver", ["gn", "lm", "lm-identity"])
@pytest.mark.parametrize("x0", [[1.0, 0.0], [5.0, 1.0]])
def test_curve_fit_recovered(solver, x0):
    x, y, res, jac = _curve_problem()
    if solver == "gn":
        out = gauss_newton(res, jac, x0)
    else:
        out = levenberg_marquardt(res, jac, x0, scaling="identity" if solver == "lm-identity" else "marquardt")
    assert out.converged, out.message
    np.testing.assert_allclose(out.x, [2.5, -1.3], atol=0.02)
    # stationary point of the least-squares cost: J^T r = 0, and it beats nearby points
    assert np.max(np.abs(jac(out.x).T @ res(out.x))) < 1e-8
    for d in ([1e-3, 0], [0, 1e-3], [-1e-3, 1e-3]):
        assert 0.5 * np.sum(res(out.x + np.array(d)) ** 2) > out.fun


def test_gn_and_lm_agree_and_lm_solves_linear_problem():
    _, _, res, jac = _curve_problem(seed=1, noise=0.05)
    a = gauss_newton(res, jac, [1.0, 0.0]).x
    b = levenberg_marquardt(res, jac, [1.0, 0.0]).x
    np.testing.assert_allclose(a, b, rtol=1e-8)
    rng = np.random.default_rng(2)
    A, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    out = levenberg_marquardt(lambda p: A @ p - y, lambda p: A, np.zeros(3))
    np.testing.assert_allclose(out.x, np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-8)


def test_lm_far_start_where_plain_gn_fails():
    _, _, res, jac = _curve_problem()
    with np.errstate(over="ignore", invalid="ignore"):
        plain = gauss_newton(res, jac, [0.1, 3.0], line_search=False, max_iter=30)
    assert not plain.converged  # undamped Gauss-Newton overshoots and blows up from here
    lm = levenberg_marquardt(res, jac, [0.1, 3.0])
    assert lm.converged
    np.testing.assert_allclose(lm.x, [2.5, -1.3], atol=0.02)


def test_optimize_bad_input():
    with pytest.raises(ValueError, match="'x0'"):
        newton(rosenbrock_grad, rosenbrock_hess, np.ones((2, 2)))
    with pytest.raises(TypeError, match="'grad'"):
        newton(None, rosenbrock_hess, [1.0, 2.0])
    with pytest.raises(ValueError, match="'hess'"):
        newton(rosenbrock_grad, lambda x: np.eye(3), [0.0, 0.0])
    with pytest.raises(ValueError, match="'residual'"):
        gauss_newton(lambda p: p[:1], lambda p: np.ones((1, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="'jacobian'"):
        levenberg_marquardt(lambda p: np.ones(3), lambda p: np.ones((2, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="'scaling'"):
        levenberg_marquardt(lambda p: p, lambda p: np.eye(2), [1.0, 2.0], scaling="x")
    with pytest.raises(TypeError, match="'x0'"):
        minimize_lbfgs(rosenbrock, rosenbrock_grad, np.array(["a", "b"]))
    with pytest.raises(ValueError, match="'grad'"):
        minimize_lbfgs(rosenbrock, lambda x: np.ones(3), [0.0, 0.0])
    with pytest.raises(ValueError, match="'m'"):
        LBFGSMemory(0)
    with pytest.raises(ValueError, match="'line_search'"):
        minimize_lbfgs(rosenbrock, rosenbrock_grad, [0.0, 0.0], line_search="exact")
