"""Second-order optimisation: Newton and L-BFGS on the Rosenbrock function (against plain
gradient descent with a line search), and a curve fit y = a exp(b x) + noise by
Gauss-Newton and Levenberg-Marquardt.

Run: python examples/second_order.py   (about a second)
"""

from __future__ import annotations

import numpy as np

from oxinet.optimize import (backtracking_line_search, gauss_newton, levenberg_marquardt, minimize_lbfgs,
                             newton, rosenbrock, rosenbrock_grad, rosenbrock_hess)


def gradient_descent(x0, max_iter: int):
    """Steepest descent with Armijo backtracking, for comparison."""
    x = np.asarray(x0, float)
    for it in range(max_iter):
        g = rosenbrock_grad(x)
        if np.max(np.abs(g)) < 1e-8:
            return x, it
        ls = backtracking_line_search(rosenbrock, x, -g, rosenbrock(x), g)
        x = x - ls.alpha * g
    return x, max_iter


def main(gd_iters: int = 5000, n_points: int = 60, seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    x0 = np.array([-1.2, 1.0])
    nt = newton(rosenbrock_grad, rosenbrock_hess, x0, f=rosenbrock)
    lb = minimize_lbfgs(rosenbrock, rosenbrock_grad, x0, gtol=1e-10)
    gx, git = gradient_descent(x0, gd_iters)
    out = {"newton": (nt.x, nt.n_iter), "lbfgs": (lb.x, lb.n_iter), "gd": (gx, git)}
    say("Rosenbrock from (-1.2, 1), minimum at (1, 1):")
    say(f"  Newton      {nt.n_iter:5d} iterations -> {np.round(nt.x, 8)}")
    say(f"  L-BFGS      {lb.n_iter:5d} iterations -> {np.round(lb.x, 8)}")
    say(f"  gradient    {git:5d} iterations -> {np.round(gx, 8)} (error {np.abs(gx - 1).max():.1e})")

    rng = np.random.default_rng(seed)
    x = np.linspace(0, 3, n_points)
    a_true, b_true = 2.0, -0.8
    y = a_true * np.exp(b_true * x) + 0.02 * rng.standard_normal(n_points)

    def residual(p):
        return p[0] * np.exp(p[1] * x) - y

    def jacobian(p):
        e = np.exp(p[1] * x)
        return np.column_stack([e, p[0] * x * e])

    gn = gauss_newton(residual, jacobian, [1.0, 0.0])
    lm = levenberg_marquardt(residual, jacobian, [1.0, 0.0])
    out["gauss_newton"] = gn.x
    out["levenberg_marquardt"] = lm.x
    say(f"curve fit y = a exp(b x), true (a, b) = ({a_true}, {b_true}):")
    say(f"  Gauss-Newton        {gn.n_iter:3d} iterations -> {np.round(gn.x, 4)}")
    say(f"  Levenberg-Marquardt {lm.n_iter:3d} iterations -> {np.round(lm.x, 4)}")
    return out


if __name__ == "__main__":
    main()
