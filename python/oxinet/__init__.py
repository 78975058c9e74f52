"""oxinet: deep learning on the CPU with Rust kernels under a NumPy/PyTorch-shaped API.

Fast ops on NumPy arrays live in :mod:`oxinet.ops`; :class:`Tensor` adds reverse-mode
autograd on top, :mod:`oxinet.nn` and :mod:`oxinet.optim` give PyTorch-shaped layers,
losses and optimizers; runtime controls are here.
"""

import numpy as _np

from oxinet._core import __version__
from oxinet._runtime import (cached_buffer_bytes, get_num_threads, release_buffers, set_num_threads,
                             simd_level)
from oxinet import ops
from oxinet.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from oxinet.random import manual_seed, seed, initial_seed, get_rng_state, set_rng_state
from oxinet import random
from oxinet.tensor import (
    Tensor, get_default_dtype, set_default_dtype, cat, concat, concatenate, stack, split, chunk,
    pad, where, maximum, minimum, matmul,
)
from oxinet.creation import (
    tensor, as_tensor, from_numpy, zeros, ones, empty, full, zeros_like, ones_like, full_like,
    empty_like, randn, rand, randn_like, rand_like, randint, randperm, arange, linspace, eye,
)
from oxinet._functions import *  # noqa: F401,F403  (exp, log, sum, mean, ...)
from oxinet._functions import __all__ as _fn_names
from oxinet import autograd
from oxinet.autograd import gradcheck, GradcheckError, Function
from oxinet import nn, optim
from oxinet import data, metrics, serialization
from oxinet.serialization import load, load_checkpoint, save, save_checkpoint
from oxinet import train
from oxinet.train import Model

float32 = _np.dtype(_np.float32)
float64 = _np.dtype(_np.float64)
float = float32
double = float64
int32 = _np.dtype(_np.int32)
int64 = _np.dtype(_np.int64)
long = int64
bool = _np.dtype(_np.bool_)
uint8 = _np.dtype(_np.uint8)

__all__ = [
    "release_buffers", "cached_buffer_bytes",
    "__version__", "ops", "get_num_threads", "set_num_threads", "simd_level",
    "Tensor", "tensor", "as_tensor", "from_numpy", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state",
    "random", "gradcheck", "GradcheckError", "Function", "autograd", "nn", "optim",
    "get_default_dtype", "set_default_dtype",
    "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "full_like", "empty_like",
    "randn", "rand", "randn_like", "rand_like", "randint", "randperm", "arange", "linspace", "eye",
    "cat", "concat", "concatenate", "stack", "split", "chunk", "pad", "where", "maximum", "minimum",
    "matmul", "float32", "float64", "int32", "int64", "uint8",
    "data", "metrics", "serialization", "save", "load", "save_checkpoint", "load_checkpoint",
    "train", "Model",
] + list(_fn_names)
# classical baselines, second-order optimisation, RL without autograd, tracking (issue 10)
from oxinet import classic, optimize, rl, tracking, gnn, generative  # noqa: E402
__all__ += ["classic", "optimize", "rl", "tracking", "gnn", "generative"]
