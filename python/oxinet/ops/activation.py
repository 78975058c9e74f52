"""Activations, softmax and log-softmax (``torch.nn.functional`` names and defaults).

Every function takes float32/float64 arrays of any shape and returns a new array of the
same shape and dtype. Backward functions take the upstream gradient and the forward's
*input* (softmax/log_softmax: its *output*) and return the gradient of the input.

Where the work happens. Measured on the 2-core AVX-512 development machine, one
thread, CPU time, float32, 4M elements, against the obvious NumPy expressions
(``cases_loss.py``, group "activation", has the same cases for 2 threads):

====================  ===========  ==========  ===========================
op                    oxinet (ms)  NumPy (ms)  runs in
====================  ===========  ==========  ===========================
sigmoid fwd / bwd     1.6 / 1.9    4.9 / 7.6   Rust
silu fwd / bwd        1.4 / 1.8    4.4 / 12.3  Rust
gelu tanh fwd         1.9          7.2         Rust
gelu exact fwd        4.0          (no erf)    Rust
elu fwd               1.8          21          Rust (selu likewise)
softplus fwd          2.7          68          Rust
relu fwd / bwd        0.7 / 1.4    1.5 / 2.2   Rust
leaky_relu fwd        0.7          21          Rust
tanh fwd              2.2          0.8         **NumPy** (``np.tanh`` uses SVML)
tanh bwd              2.4          3.1         Rust (and 2 threads)
====================  ===========  ==========  ===========================

Rust passes are single fused loops, vectorised (AVX-512/AVX2 chosen at run time) and
split over oxinet's threads; NumPy needs several passes and temporaries.
"""

from __future__ import annotations

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, empty, kernel_for, normalize_axis, result_dtype

__all__ = [
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "elu",
    "elu_backward",
    "selu",
    "selu_backward",
    "gelu",
    "gelu_backward",
    "silu",
    "silu_backward",
    "softplus",
    "softplus_backward",
    "softmax",
    "log_softmax",
    "softmax_backward",
    "log_softmax_backward",
]


def _act(x, kind: str, op: str, p1: float = 0.0, p2: float = 0.0) -> np.ndarray:
    a = as_float_array(x, "input", op)
    a = np.ascontiguousarray(a)
    f = kernel_for(a.dtype, _core.activation_f32, _core.activation_f64)
    out = empty(a.shape, a.dtype)
    f(a, out, kind, p1, p2)
    return out


def _act_bwd(g, x, kind: str, op: str, p1: float = 0.0, p2: float = 0.0) -> np.ndarray:
    gy = as_float_array(g, "grad_output", op)
    a = as_float_array(x, "input", op)
    if gy.shape != a.shape:
        raise ValueError(f"{op}: 'grad_output' has shape {gy.shape} but 'input' has shape {a.shape}")
    dtype = result_dtype(gy, a)
    a = np.ascontiguousarray(a, dtype=dtype)
    gy = np.ascontiguousarray(gy, dtype=dtype)
    f = kernel_for(dtype, _core.activation_backward_f32, _core.activation_backward_f64)
    dx = empty(a.shape, a.dtype)
    f(a, gy, dx, kind, p1, p2)
    return dx


def sigmoid(input) -> np.ndarray:
    """``1 / (1 + exp(-x))``, computed without overflow for any x."""
    return _act(input, "sigmoid", "sigmoid")


def sigmoid_backward(grad_output, input) -> np.ndarray:
    """``grad_output * s * (1 - s)`` with ``s = sigmoid(input)``."""
    return _act_bwd(grad_output, input, "sigmoid", "sigmoid_backward")


def tanh(input) -> np.ndarray:
    """Hyperbolic tangent: ``np.tanh`` (NumPy's vectorised tanh beats oxinet's here)."""
    a = as_float_array(input, "input", "tanh")
    return np.tanh(a)


def tanh_backward(grad_output, input) -> np.ndarray:
    """``grad_output * (1 - tanh(input)^2)``."""
    return _act_bwd(grad_output, input, "tanh", "tanh_backward")


def relu(input) -> np.ndarray:
    """``max(x, 0)`` (NaN stays NaN)."""
    return _act(input, "relu", "relu")


def relu_backward(grad_output, input) -> np.ndarray:
    """``grad_output`` where ``input > 0``, else 0 (PyTorch's choice at 0)."""
    return _act_bwd(grad_output, input, "relu", "relu_backward")


def leaky_relu(input, negative_slope: float = 0.01) -> np.ndarray:
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise."""
    return _act(input, "leaky_relu", "leaky_relu", float(negative_slope))


def leaky_relu_backward(grad_output, input, negative_slope: float = 0.01) -> np.ndarray:
    return _act_bwd(grad_output, input, "leaky_relu", "leaky_relu_backward", float(negative_slope))


def elu(input, alpha: float = 1.0) -> np.ndarray:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise (``expm1``, accurate near 0)."""
    return _act(input, "elu", "elu", float(alpha))


def elu_backward(grad_output, input, alpha: float = 1.0) -> np.ndarray:
    return _act_bwd(grad_output, input, "elu", "elu_backward", float(alpha))


def selu(input) -> np.ndarray:
    """``scale * elu(x, alpha)`` with PyTorch's constants (alpha 1.6733, scale 1.0507)."""
    return _act(input, "selu", "selu")


def selu_backward(grad_output, input) -> np.ndarray:
    return _act_bwd(grad_output, input, "selu", "selu_backward")


def _gelu_kind(approximate: str, op: str) -> str:
    if approximate == "none":
        return "gelu"
    if approximate == "tanh":
        return "gelu_tanh"
    raise ValueError(f"{op}: 'approximate' must be 'none' or 'tanh', got {approximate!r}")


def gelu(input, approximate: str = "none") -> np.ndarray:
    """GELU: ``x * Phi(x)`` with the exact normal CDF (``approximate='none'``, erf in
    double precision), or ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    return _act(input, _gelu_kind(approximate, "gelu"), "gelu")


def gelu_backward(grad_output, input, approximate: str = "none") -> np.ndarray:
    return _act_bwd(grad_output, input, _gelu_kind(approximate, "gelu_backward"), "gelu_backward")


def silu(input) -> np.ndarray:
    """``x * sigmoid(x)`` (swish with beta = 1)."""
    return _act(input, "silu", "silu")


def silu_backward(grad_output, input) -> np.ndarray:
    return _act_bwd(grad_output, input, "silu", "silu_backward")


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    """``log(1 + exp(beta x)) / beta``, and ``x`` where ``beta x > threshold``."""
    if beta == 0:
        raise ValueError("softplus: 'beta' must be non-zero")
    return _act(input, "softplus", "softplus", float(beta), float(threshold))


def softplus_backward(grad_output, input, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    if beta == 0:
        raise ValueError("softplus_backward: 'beta' must be non-zero")
    return _act_bwd(grad_output, input, "softplus", "softplus_backward", float(beta), float(threshold))


# ------------------------------------------------------------------ softmax family


def _dims(shape: tuple, axis: int) -> tuple[int, int, int]:
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, shape[axis], inner


def _softmax(x, dim, axis, log: bool, op: str) -> np.ndarray:
    a = as_float_array(x, "input", op)
    if axis is not None:
        dim = axis
    shape = a.shape
    a1 = a.reshape(1) if a.ndim == 0 else a
    d = normalize_axis(dim, a1.ndim, op)
    a1 = np.ascontiguousarray(a1)
    f = kernel_for(a1.dtype, _core.softmax_f32, _core.softmax_f64)
    y = empty(a1.shape, a1.dtype)
    f(a1, y, *_dims(a1.shape, d), log)
    return y.reshape(shape)


def softmax(input, dim: int = -1, *, axis: int | None = None) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``dim`` (``axis`` is an alias).

    Any shape, float32/float64. The maximum is subtracted first, so logits of +/-1e4 are
    exact; a slice that is all ``-inf`` gives NaN (as PyTorch). Course F6.
    """
    return _softmax(input, dim, axis, False, "softmax")


def log_softmax(input, dim: int = -1, *, axis: int | None = None) -> np.ndarray:
    """``x - max - log(sum(exp(x - max)))`` along ``dim`` (``axis`` is an alias)."""
    return _softmax(input, dim, axis, True, "log_softmax")


def _softmax_bwd(g, y, dim, axis, log: bool, op: str) -> np.ndarray:
    gy = as_float_array(g, "grad_output", op)
    out = as_float_array(y, "output", op)
    if gy.shape != out.shape:
        raise ValueError(f"{op}: 'grad_output' has shape {gy.shape} but 'output' has shape {out.shape}")
    if axis is not None:
        dim = axis
    dtype = result_dtype(gy, out)
    shape = out.shape
    o1 = out.reshape(1) if out.ndim == 0 else out
    g1 = gy.reshape(o1.shape)
    d = normalize_axis(dim, o1.ndim, op)
    o1 = np.ascontiguousarray(o1, dtype=dtype)
    g1 = np.ascontiguousarray(g1, dtype=dtype)
    f = kernel_for(dtype, _core.softmax_backward_f32, _core.softmax_backward_f64)
    dx = empty(o1.shape, o1.dtype)
    f(o1, g1, dx, *_dims(o1.shape, d), log)
    return dx.reshape(shape)


def softmax_backward(grad_output, output, dim: int = -1, *, axis: int | None = None) -> np.ndarray:
    """Input gradient of :func:`softmax` from its ``output`` y: ``y * (g - sum(g * y))``."""
    return _softmax_bwd(grad_output, output, dim, axis, False, "softmax_backward")


def log_softmax_backward(grad_output, output, dim: int = -1, *, axis: int | None = None) -> np.ndarray:
    """Input gradient of :func:`log_softmax` from its ``output`` y: ``g - exp(y) * sum(g)``."""
    return _softmax_bwd(grad_output, output, dim, axis, True, "log_softmax_backward")
