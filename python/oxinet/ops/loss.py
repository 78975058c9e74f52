"""Losses: cross-entropy (fused with its gradient), NLL, binary cross-entropy with logits.

Semantics follow ``torch.nn.functional`` exactly, including its weighting rules:

* ``cross_entropy`` with class-index targets: the loss of sample n is
  ``(1 - eps) * w[t_n] * (-log p_n[t_n]) + eps / C * sum_c w[c] * (-log p_n[c])``
  (``eps`` = label_smoothing, ``p`` = softmax over the class axis, ``w`` = weight or 1);
  samples whose target is ``ignore_index`` count 0. ``'mean'`` divides the sum by
  ``sum_n w[t_n]`` over the non-ignored samples (NaN if there are none, as PyTorch).
* with class-probability targets (same shape as the input):
  ``-sum_c w[c] * t'[c] * log p[c]`` with ``t' = (1 - eps) t + eps / C``; ``'mean'``
  divides by the number of samples (N times the spatial size).

The class axis is 1 for inputs of 2 or more dimensions (N, C, d1, ...) and 0 for a
single sample (C,). The Rust kernel makes one pass for the row maximum and a fused
pass for ``exp``, the sum and the gradient (course F6: dlogits = softmax - onehot).
"""

from __future__ import annotations

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, as_index_array, check_out, check_reduction, empty, kernel_for, result_dtype

__all__ = [
    "cross_entropy",
    "cross_entropy_with_grad",
    "cross_entropy_backward",
    "nll_loss",
    "nll_loss_backward",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "binary_cross_entropy_with_logits_backward",
]


def _class_last(x: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (N * d1 * ..., C) contiguous; (C,) -> (1, C)."""
    if x.ndim == 1:
        return np.ascontiguousarray(x.reshape(1, -1))
    if x.ndim == 2:
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)).reshape(-1, x.shape[1])


def _class_back(g2: np.ndarray, shape: tuple) -> np.ndarray:
    """Inverse of :func:`_class_last` for a gradient."""
    if len(shape) <= 2:
        return g2.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(g2.reshape(moved), -1, 1)


def _ce_prepare(input, target, weight, ignore_index, label_smoothing, reduction, op):
    x = as_float_array(input, "input", op)
    check_reduction(reduction, op)
    if x.ndim == 0:
        raise ValueError(f"{op}: 'input' must have at least 1 dimension (C,) or (N, C, ...), got a scalar")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: 'label_smoothing' must be in [0, 1], got {label_smoothing}")
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    t = np.asarray(target)
    w = None
    if weight is not None:
        w = as_float_array(weight, "weight", op)
        if w.shape != (C,):
            raise ValueError(f"{op}: 'weight' has shape {w.shape}, expected ({C},) for input of shape {x.shape}")
    if np.issubdtype(t.dtype, np.floating):
        if t.shape != x.shape:
            raise ValueError(
                f"{op}: 'target' with probabilities must have the input's shape {x.shape}, got {t.shape} "
                f"(class-index targets must be an integer array)"
            )
        prob = True
        dtype = result_dtype(x, as_float_array(t, "target", op), *(() if w is None else (w,)))
    else:
        t = as_index_array(t, "target", op)
        want = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
        if t.shape != want:
            raise ValueError(f"{op}: 'target' has shape {t.shape}, expected {want} for input of shape {x.shape}")
        prob = False
        dtype = result_dtype(x, *(() if w is None else (w,)))
    x2 = _class_last(x.astype(dtype, copy=False))
    if prob:
        t2 = _class_last(t.astype(dtype, copy=False))
        tshape = want_shape = (x.shape[:1] + x.shape[2:]) if x.ndim > 1 else ()
    else:
        t2 = np.ascontiguousarray(t.reshape(-1))
        tshape = want_shape = t.shape
    w1 = None if w is None else np.ascontiguousarray(w, dtype=dtype)
    return x, x2, t2, prob, w1, dtype, eps, int(ignore_index), tshape, want_shape


def _ce_denominator(t2, prob, w1, ignore_index, n):
    if prob:
        return float(n)
    keep = t2 != ignore_index
    if w1 is None:
        return float(np.count_nonzero(keep))
    return float(w1.astype(np.float64)[t2[keep]].sum())


def _ce_run(x2, t2, prob, w1, dtype, eps, ignore_index, gscale, grad=None):
    f = kernel_for(dtype, _core.cross_entropy_f32, _core.cross_entropy_f64)
    loss = np.empty(x2.shape[0], dtype)
    if gscale is not None and grad is None:
        grad = empty(x2.shape, x2.dtype)
    f(x2, None if prob else t2, t2 if prob else None, w1, ignore_index, eps, loss, gscale, grad)
    return loss, grad


def _reduce(rows, reduction, denom, tshape, dtype):
    if reduction == "none":
        return rows.reshape(tshape)
    total = rows.sum(dtype=np.float64)
    if reduction == "sum":
        return dtype.type(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return dtype.type(total / denom if denom != 0 else np.nan)


def _gscale(grad_output, reduction, denom, tshape, dtype, op):
    if reduction == "none":
        g = as_float_array(grad_output, "grad_output", op)
        if g.shape != tuple(tshape):
            raise ValueError(f"{op}: 'grad_output' has shape {g.shape}, expected {tuple(tshape)} for reduction='none'")
        return np.ascontiguousarray(g.reshape(-1), dtype=dtype)
    g = np.asarray(grad_output, dtype=np.float64)
    if g.size != 1:
        raise ValueError(f"{op}: 'grad_output' must be a scalar for reduction={reduction!r}, got shape {g.shape}")
    s = float(g.reshape(()))
    if reduction == "mean":
        # No sample counts (all ignored): the loss is NaN and nothing gets a gradient.
        s = s / denom if denom != 0 else 0.0
    return np.array([s], dtype=dtype)


def cross_entropy(input, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0):
    """Cross-entropy of logits ``input`` against ``target`` (``torch.nn.functional.cross_entropy``).

    input: (C,), (N, C) or (N, C, d1, ...) float32/float64 logits.
    target: integer class indices of shape (), (N,) or (N, d1, ...) in ``[0, C)`` or equal
    to ``ignore_index``; or float class probabilities with the input's shape.
    weight: optional (C,) per-class weights. Returns a scalar of the input's dtype, or the
    per-sample losses (target's shape) for ``reduction='none'``. See the module docstring
    for the exact weighting; logits of +/-1e4 are exact (max subtraction).
    """
    op = "cross_entropy"
    x, x2, t2, prob, w1, dtype, eps, ign, tshape, _ = _ce_prepare(input, target, weight, ignore_index, label_smoothing, reduction, op)
    rows, _ = _ce_run(x2, t2, prob, w1, dtype, eps, ign, None)
    denom = _ce_denominator(t2, prob, w1, ign, x2.shape[0]) if reduction == "mean" else 1.0
    return _reduce(rows, reduction, denom, tshape, dtype)


def cross_entropy_with_grad(input, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                            label_smoothing: float = 0.0, grad_output=1.0, out: np.ndarray | None = None):
    """``(loss, d_input)`` of :func:`cross_entropy` in one fused pass over the logits.

    ``grad_output`` is the upstream gradient of the loss: a scalar (default 1) for
    'mean'/'sum', an array of the target's shape for 'none'. ``d_input`` has the input's
    shape and dtype; ``out`` (that shape and dtype, C-contiguous for 1-D/2-D inputs)
    receives it without allocating (reusing a buffer saves the page faults of a fresh
    large array on every step).
    """
    op = "cross_entropy"
    x, x2, t2, prob, w1, dtype, eps, ign, tshape, _ = _ce_prepare(input, target, weight, ignore_index, label_smoothing, reduction, op)
    denom = _ce_denominator(t2, prob, w1, ign, x2.shape[0]) if reduction == "mean" else 1.0
    gs = _gscale(grad_output, reduction, denom, tshape, dtype, op)
    direct = None
    if out is not None:
        check_out(out, x.shape, dtype, op, x2)
        if x.ndim <= 2 and out.flags.c_contiguous:
            direct = out.reshape(x2.shape)
    rows, g2 = _ce_run(x2, t2, prob, w1, dtype, eps, ign, gs, direct)
    loss = _reduce(rows, reduction, denom, tshape, dtype)
    if out is None:
        return loss, _class_back(g2, x.shape)
    if direct is None:
        out[...] = _class_back(g2, x.shape)
    return loss, out


def cross_entropy_backward(grad_output, input, target, weight=None, *, ignore_index: int = -100,
                           reduction: str = "mean", label_smoothing: float = 0.0,
                           out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`cross_entropy` with respect to ``input`` (same shape and dtype)."""
    return cross_entropy_with_grad(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=label_smoothing, grad_output=grad_output, out=out)[1]


# -------------------------------------------------------------------------- NLL


def _nll_prepare(input, target, weight, reduction, op):
    x = as_float_array(input, "input", op)
    check_reduction(reduction, op)
    if x.ndim == 0:
        raise ValueError(f"{op}: 'input' must have at least 1 dimension (C,) or (N, C, ...), got a scalar")
    t = as_index_array(target, "target", op)
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    want = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    if t.shape != want:
        raise ValueError(f"{op}: 'target' has shape {t.shape}, expected {want} for input of shape {x.shape}")
    w = None
    if weight is not None:
        w = as_float_array(weight, "weight", op)
        if w.shape != (C,):
            raise ValueError(f"{op}: 'weight' has shape {w.shape}, expected ({C},)")
    dtype = result_dtype(x, *(() if w is None else (w,)))
    return x.astype(dtype, copy=False), t, w, C, dtype


def _nll_gather(x, t, w, C, ignore_index, op):
    x2 = _class_last(x)
    t1 = t.reshape(-1)
    keep = t1 != ignore_index
    bad = keep & ((t1 < 0) | (t1 >= C))
    if bad.any():
        raise ValueError(f"{op}: 'target' contains {int(t1[bad][0])}, out of range for {C} classes "
                         f"(and not ignore_index={ignore_index})")
    safe = np.where(keep, t1, 0)
    wt = np.ones(t1.shape, x.dtype) if w is None else w.astype(x.dtype)[safe]
    wt = np.where(keep, wt, 0).astype(x.dtype)
    picked = x2[np.arange(x2.shape[0]), safe]
    return x2, safe, wt, picked


def nll_loss(input, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
    """Negative log-likelihood of log-probabilities ``input`` (``torch.nn.functional.nll_loss``).

    input: (C,), (N, C) or (N, C, d1, ...); target: integer (), (N,) or (N, d1, ...).
    Sample loss ``-w[t] * input[t]``; 'mean' divides by ``sum w[t]`` over non-ignored samples.
    Plain NumPy (a gather: there is nothing for Rust to fuse).
    """
    op = "nll_loss"
    x, t, w, C, dtype = _nll_prepare(input, target, weight, reduction, op)
    _, _, wt, picked = _nll_gather(x, t, w, C, int(ignore_index), op)
    rows = -(wt * picked)
    rows = np.where(wt == 0, 0, rows).astype(dtype)
    return _reduce(rows, reduction, float(wt.sum(dtype=np.float64)), t.shape, dtype)


def nll_loss_backward(grad_output, input, target, weight=None, *, ignore_index: int = -100,
                      reduction: str = "mean") -> np.ndarray:
    """Gradient of :func:`nll_loss` with respect to ``input``."""
    op = "nll_loss_backward"
    x, t, w, C, dtype = _nll_prepare(input, target, weight, reduction, op)
    x2, safe, wt, _ = _nll_gather(x, t, w, C, int(ignore_index), op)
    gs = _gscale(grad_output, reduction, float(wt.sum(dtype=np.float64)), t.shape, dtype, op)
    g2 = np.zeros(x2.shape, dtype)
    g2[np.arange(x2.shape[0]), safe] = -(wt * gs).astype(dtype)
    return _class_back(g2, x.shape)


# ----------------------------------------------------- binary cross-entropy with logits


def _bce_prepare(input, target, weight, pos_weight, reduction, op):
    x = as_float_array(input, "input", op)
    check_reduction(reduction, op)
    y = as_float_array(target, "target", op)
    if y.shape != x.shape:
        raise ValueError(f"{op}: 'target' has shape {y.shape} but 'input' has shape {x.shape} (they must match)")
    extra = []
    arrs = {}
    for name, a in (("weight", weight), ("pos_weight", pos_weight)):
        if a is None:
            arrs[name] = None
            continue
        a = as_float_array(a, name, op)
        try:
            ok = np.broadcast_shapes(a.shape, x.shape) == x.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{op}: '{name}' has shape {a.shape}, which does not broadcast to the input's shape {x.shape}")
        arrs[name] = a
        extra.append(a)
    dtype = result_dtype(x, y, *extra)

    def full(a):
        if a is None:
            return None
        return np.ascontiguousarray(np.broadcast_to(a.astype(dtype, copy=False), x.shape))

    return (np.ascontiguousarray(x, dtype=dtype), np.ascontiguousarray(y, dtype=dtype),
            full(arrs["weight"]), full(arrs["pos_weight"]), dtype)


def binary_cross_entropy_with_logits(input, target, weight=None, *, pos_weight=None, reduction: str = "mean"):
    """Sigmoid + binary cross-entropy in one stable expression (course F2, PyTorch semantics):

    ``loss = -w * (pos_weight * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x)))``,
    computed as ``w * ((1 - y) x + (1 + (pos_weight - 1) y) softplus(-x))``, finite for any x.
    input, target: same shape, float. weight broadcasts to the input; pos_weight too (usually
    (C,) along the last axis). 'mean' averages over all elements. Rust, one fused pass.
    """
    op = "binary_cross_entropy_with_logits"
    x, y, w, pw, dtype = _bce_prepare(input, target, weight, pos_weight, reduction, op)
    f = kernel_for(dtype, _core.bce_with_logits_f32, _core.bce_with_logits_f64)
    rows = np.empty_like(x)
    f(x, y, w, pw, rows, None, None)
    return _reduce(rows, reduction, float(x.size), x.shape, dtype)


def binary_cross_entropy_with_logits_with_grad(input, target, weight=None, *, pos_weight=None,
                                               reduction: str = "mean", grad_output=1.0):
    """``(loss, d_input)`` of :func:`binary_cross_entropy_with_logits` in one pass."""
    op = "binary_cross_entropy_with_logits"
    x, y, w, pw, dtype = _bce_prepare(input, target, weight, pos_weight, reduction, op)
    gs = _gscale(grad_output, reduction, float(x.size), x.shape, dtype, op)
    f = kernel_for(dtype, _core.bce_with_logits_f32, _core.bce_with_logits_f64)
    rows, g = np.empty_like(x), empty(x.shape, x.dtype)
    f(x, y, w, pw, rows, gs, g)
    return _reduce(rows, reduction, float(x.size), x.shape, dtype), g


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None, *, pos_weight=None,
                                              reduction: str = "mean") -> np.ndarray:
    """Gradient with respect to ``input``: ``w * ((1 + (pw - 1) y) sigmoid(x) - pw y)`` times the
    upstream gradient (divided by the element count for 'mean')."""
    return binary_cross_entropy_with_logits_with_grad(input, target, weight, pos_weight=pos_weight,
                                                      reduction=reduction, grad_output=grad_output)[1]
