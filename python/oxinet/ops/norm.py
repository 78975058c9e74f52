"""Batch normalisation on NumPy arrays, forward and backward, on one fused Rust kernel.

Shapes: input (N, C) or (N, C, *) (NCHW images: statistics per channel over N, H, W);
weight, bias, running_mean, running_var, save_mean, save_invstd: (C,).
dtypes: float32 (default) and float64; mixing them gives float64; other dtypes raise
``TypeError``. Bad shapes and parameters raise ``ValueError`` naming the argument.

``batch_norm`` follows ``torch.nn.functional.batch_norm``: in training mode the batch
mean and biased variance normalise the input and, when running statistics are given,
they are updated in place as ``running = (1 - momentum) * running + momentum * batch``
with the *unbiased* batch variance; otherwise the running statistics normalise.
``return_stats=True`` also returns the per-channel mean and ``1 / sqrt(var + eps)`` used
(like ``torch.native_batch_norm``), which ``batch_norm_backward`` takes.

``activation`` (an oxinet extension) applies ReLU, ReLU6 or hardtanh to the output in the
same pass; its backward (PyTorch's rules: the gradient passes where ``x > 0``, resp.
``min < x < max``) is folded into ``batch_norm_backward`` with the same argument.

The kernel visits each channel's data three times in a row (mean, squared deviations,
output) while it stays in cache, and splits the work over channels only, so results do
not depend on the thread count.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, empty, kernel_for, result_dtype

__all__ = ["batch_norm", "batch_norm_backward"]

_NEEDS = ("input", "weight", "bias")
_ACTS = (None, "relu", "relu6", "hardtanh")


def _act_args(activation, hardtanh_bounds, op):
    if activation not in _ACTS:
        raise ValueError(f"{op}: 'activation' must be one of {_ACTS}, got {activation!r}")
    if activation is None:
        return "identity", 0.0, 0.0
    if activation == "relu":
        return "relu", 0.0, 0.0
    if activation == "relu6":
        return "hardtanh", 0.0, 6.0
    try:
        lo, hi = (float(v) for v in hardtanh_bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: 'hardtanh_bounds' must be a pair (min, max), got {hardtanh_bounds!r}") from None
    if not lo <= hi:
        raise ValueError(f"{op}: 'hardtanh_bounds' must satisfy min <= max, got {hardtanh_bounds!r}")
    return "hardtanh", lo, hi


def _dims(x, op):
    if x.ndim < 2:
        raise ValueError(f"{op}: 'input' must be (N, C) or (N, C, *), got shape {x.shape}")
    n, c = x.shape[:2]
    return n, c, math.prod(x.shape[2:])


def _per_channel(v, name, c, x_shape, op):
    if v is None:
        return None
    a = as_float_array(v, name, op)
    if a.shape != (c,):
        raise ValueError(f"{op}: '{name}' has shape {a.shape} but input has {c} channels (shape {x_shape})")
    return a


def _c(a, dtype):
    return None if a is None else np.ascontiguousarray(a, dtype=dtype)


def batch_norm(input, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, activation=None, hardtanh_bounds=(-1.0, 1.0), return_stats=False):
    """Batch normalisation of ``input`` (N, C, *) per channel; see the module doc.

    Returns y (input's shape, the promoted dtype), or ``(y, save_mean, save_invstd)`` (each
    (C,)) with ``return_stats=True``. ``running_mean``/``running_var`` are updated in place
    in training mode (they must then be writeable float arrays of shape (C,)).
    """
    op = "batch_norm"
    x = as_float_array(input, "input", op)
    n, c, inner = _dims(x, op)
    w = _per_channel(weight, "weight", c, x.shape, op)
    b = _per_channel(bias, "bias", c, x.shape, op)
    rm = _per_channel(running_mean, "running_mean", c, x.shape, op)
    rv = _per_channel(running_var, "running_var", c, x.shape, op)
    kind, lo, hi = _act_args(activation, hardtanh_bounds, op)
    if not eps >= 0:
        raise ValueError(f"{op}: 'eps' must be >= 0, got {eps!r}")
    dtype = result_dtype(*(a for a in (x, w, b) if a is not None))
    if training:
        if n * inner <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got input shape {x.shape}")
        given = (None, None)
    else:
        if rm is None or rv is None:
            raise ValueError(f"{op}: 'running_mean' and 'running_var' are needed when training=False")
        given = (_c(rm, dtype), _c(rv, dtype))
    xc = np.ascontiguousarray(x, dtype=dtype)
    y = empty(x.shape, dtype)
    mean, invstd, var = np.empty(c, dtype), np.empty(c, dtype), np.empty(c, dtype)
    f = kernel_for(dtype, _core.batch_norm_forward_f32, _core.batch_norm_forward_f64)
    f(xc, n, c, inner, _c(w, dtype), _c(b, dtype), given[0], given[1], eps, kind, lo, hi, y, mean, invstd, var)
    if training and rm is not None and rv is not None:
        count = n * inner
        rm *= 1 - momentum
        rm += momentum * mean
        rv *= 1 - momentum
        rv += momentum * var * (count / (count - 1))
    if return_stats:
        return y, mean, invstd
    return y


def batch_norm_backward(grad_output, input, save_mean, save_invstd, weight=None, bias=None, training=True, *,
                        activation=None, hardtanh_bounds=(-1.0, 1.0), needs=_NEEDS):
    """Gradients of :func:`batch_norm`: returns (dx, dweight, dbias), each None unless named
    in ``needs``. ``save_mean``/``save_invstd`` are those ``batch_norm(..., return_stats=True)``
    returned; ``training`` must be the forward's (in evaluation mode the statistics are
    constants). ``bias`` is needed only with an ``activation`` (to locate its kinks).
    dweight and dbias are computed even without a ``weight``/``bias`` (as for weight 1, bias 0).
    """
    op = "batch_norm_backward"
    if isinstance(needs, str):
        needs = (needs,)
    want = set(needs)
    if want - set(_NEEDS):
        raise ValueError(f"{op}: 'needs' may only contain {_NEEDS}, got {sorted(want - set(_NEEDS))}")
    g = as_float_array(grad_output, "grad_output", op)
    x = as_float_array(input, "input", op)
    n, c, inner = _dims(x, op)
    if g.shape != x.shape:
        raise ValueError(f"{op}: 'grad_output' has shape {g.shape} but 'input' has shape {x.shape}")
    m = _per_channel(save_mean, "save_mean", c, x.shape, op)
    s = _per_channel(save_invstd, "save_invstd", c, x.shape, op)
    if m is None or s is None:
        raise ValueError(f"{op}: 'save_mean' and 'save_invstd' are required")
    w = _per_channel(weight, "weight", c, x.shape, op)
    b = _per_channel(bias, "bias", c, x.shape, op)
    kind, lo, hi = _act_args(activation, hardtanh_bounds, op)
    dtype = result_dtype(*(a for a in (g, x, w, b) if a is not None))
    dx = empty(x.shape, dtype) if "input" in want else None
    dw = np.empty(c, dtype) if "weight" in want else None
    db = np.empty(c, dtype) if "bias" in want else None
    if dx is None and dw is None and db is None:
        return None, None, None
    f = kernel_for(dtype, _core.batch_norm_backward_f32, _core.batch_norm_backward_f64)
    f(np.ascontiguousarray(g, dtype=dtype), np.ascontiguousarray(x, dtype=dtype), n, c, inner, _c(w, dtype),
      _c(b, dtype), _c(m, dtype), _c(s, dtype), bool(training), kind, lo, hi, dx, dw, db)
    return dx, dw, db
