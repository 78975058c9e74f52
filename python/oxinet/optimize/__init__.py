"""Second-order and line-search optimisation on flat NumPy vectors (INVENTORY F25, F27).

Newton's method, Gauss-Newton and Levenberg-Marquardt for small least-squares problems,
Armijo backtracking and strong-Wolfe line searches, and L-BFGS (whose memory/two-loop core is meant to be
shared with ``oxinet.optim.LBFGS``; see :mod:`oxinet.optimize.lbfgs`).
"""

from oxinet.optimize._common import OptimizeResult
from oxinet.optimize.lbfgs import LBFGSMemory, minimize_lbfgs, two_loop
from oxinet.optimize.least_squares import gauss_newton, levenberg_marquardt
from oxinet.optimize.line_search import (LineSearchResult, WolfeResult, backtracking_line_search,
                                        strong_wolfe_line_search)
from oxinet.optimize.newton import newton
from oxinet.optimize.problems import rosenbrock, rosenbrock_grad, rosenbrock_hess

__all__ = [
    "OptimizeResult", "LBFGSMemory", "minimize_lbfgs", "two_loop", "gauss_newton",
    "levenberg_marquardt", "LineSearchResult", "backtracking_line_search", "WolfeResult",
    "strong_wolfe_line_search", "newton",
    "rosenbrock", "rosenbrock_grad", "rosenbrock_hess",
]
