"""oxinet: deep learning on the CPU with Rust kernels under a NumPy/PyTorch-shaped API.

Fast ops on NumPy arrays live in :mod:`oxinet.ops`; runtime controls are here.
"""

from oxinet._core import __version__
from oxinet._runtime import get_num_threads, set_num_threads, simd_level
from oxinet import ops

__all__ = ["__version__", "ops", "get_num_threads", "set_num_threads", "simd_level"]

# classical baselines, second-order optimisation, RL without autograd, tracking (issue 10)
from oxinet import classic, optimize, rl, tracking  # noqa: E402

__all__ += ["classic", "optimize", "rl", "tracking"]
