"""oxinet: deep learning on the CPU with Rust kernels under a NumPy/PyTorch-shaped API.

Fast ops on NumPy arrays live in :mod:`oxinet.ops`; runtime controls are here.
"""

from oxinet._core import __version__
from oxinet._runtime import get_num_threads, set_num_threads, simd_level
from oxinet import ops
from oxinet import data, metrics, serialization
from oxinet.serialization import load, load_checkpoint, save, save_checkpoint

__all__ = ["__version__", "ops", "get_num_threads", "set_num_threads", "simd_level"]
__all__ += ["data", "metrics", "serialization", "save", "load", "save_checkpoint", "load_checkpoint"]
