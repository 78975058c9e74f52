"""``oxinet.nn.functional``: layers and losses as functions of Tensors.

Names, arguments and defaults follow ``torch.nn.functional``. Inputs are oxinet Tensors
(NumPy arrays are accepted and treated as constants); integer class targets may be Tensors
or arrays. Ops that need no kernel of their own are written here on Tensor operations or
as small fused graph nodes with a hand-written backward (normalisation, linear).
"""

from __future__ import annotations


import numpy as np

from oxinet.grad_mode import state as _GM
from oxinet.autograd.graph import Node
from oxinet.random import generator
from oxinet.ops import norm as _norm_ops
from oxinet.tensor import (
    ClampBackward, Tensor, _edge, _mm, _node, _plain, _result, _sum_axes, _unary, elu as _elu, gelu as _gelu,
    leaky_relu as _leaky_relu, logsigmoid as _logsigmoid, pad as _pad, scale_by_mask, silu as _silu,
    softplus as _softplus, where,
)

pad = _pad

_REDUCTIONS = ("none", "mean", "sum")


def _t(x, name="input", op="op"):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        return _plain(np.asarray(x))
    raise TypeError(f"{op}: '{name}' must be a Tensor or an array, got {type(x).__name__}")


def _arr(x):
    if x is None:
        return None
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: 'reduction' must be one of {_REDUCTIONS}, got {reduction!r}")


def _legacy_reduction(size_average, reduce, reduction):
    """PyTorch's deprecated ``size_average``/``reduce`` flags, mapped onto ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _reduce(loss, reduction, op):
    _check_reduction(reduction, op)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _float_check(x, name, op):
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: '{name}' must be a floating tensor, got dtype {x.dtype} with shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------- linear


class _LinearB(Node):
    __slots__ = ()
    fresh_grads = True  # GEMM results and a reduction

    def backward(self, g):
        ex, ew, eb = self.inputs
        x, w = self.saved
        out_f = w.shape[0]
        gx = gw = gb = None
        if ex is not None:
            gx = _mm(g, w)
        if ew is not None or eb is not None:
            g2 = g.reshape(-1, out_f)
            if ew is not None:
                gw = _mm(g2.T, x.reshape(-1, w.shape[1]))
            if eb is not None:
                gb = _sum_axes(g2, (0,))
        return gx, gw, gb


def linear(input, weight, bias=None):
    """y = x W^T + b. input (*, in_features), weight (out_features, in_features),
    bias (out_features,). Runs on oxinet's GEMM."""
    x = _t(input, "input", "linear")
    w = _t(weight, "weight", "linear")
    xd, wd = x._data, w._data
    if wd.ndim != 2:
        raise ValueError(f"linear: 'weight' must be 2-D (out_features, in_features), got shape {wd.shape}")
    if xd.ndim == 0 or xd.shape[-1] != wd.shape[1]:
        raise ValueError(
            f"linear: 'input' has shape {xd.shape} but 'weight' has shape {wd.shape} "
            f"(expects input[..., {wd.shape[1]}])"
        )
    out = _mm(xd, wd.T)
    b = None
    if bias is not None:
        b = _t(bias, "bias", "linear")
        if b.shape != (wd.shape[0],):
            raise ValueError(f"linear: 'bias' has shape {tuple(b.shape)}, expected ({wd.shape[0]},)")
        out += b._data
    if _GM.enabled and (x._rg or w._rg or (b is not None and b._rg)):
        return _result(out, _node(_LinearB, (_edge(x), _edge(w), _edge(b) if b is not None else None), (xd, wd)))
    return _plain(out)


def bilinear(input1, input2, weight, bias=None):
    """y_k = x1^T A_k x2 + b_k; weight (out, in1, in2)."""
    x1 = _t(input1)
    x2 = _t(input2)
    w = _t(weight)
    y = ((x1.unsqueeze(-2).unsqueeze(-2) @ w) .squeeze(-2) * x2.unsqueeze(-2)).sum(-1)
    return y + bias if bias is not None else y


# ----------------------------------------------------------------------------- activations


def relu(input, inplace=False):
    return _t(input).relu()


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """Clip to [min_val, max_val]; like PyTorch the gradient passes only where
    min_val < x < max_val (strictly), which is also what the fused batch_norm activation does."""
    x = _t(input)
    d = x._data
    out = np.clip(d, min_val, max_val)
    if out.dtype != d.dtype and d.dtype.kind == "f":
        out = out.astype(d.dtype)
    if _GM.enabled and x._rg:
        return _unary(x, out, ClampBackward, ((d > min_val) & (d < max_val),))
    return _plain(out)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _leaky_relu(_t(input), negative_slope)


def prelu(input, weight):
    """max(0, x) + a * min(0, x) with ``a`` of shape (1,) or (C,) (channel dim 1)."""
    x = _t(input)
    a = _t(weight)
    if a.numel() != 1:
        c = x.shape[1] if x.ndim >= 2 else x.shape[0]
        if a.numel() != c:
            raise ValueError(f"prelu: 'weight' has {a.numel()} elements but input has {c} channels "
                             f"(shape {tuple(x.shape)})")
        if x.ndim >= 2:
            a = a.reshape((1, c) + (1,) * (x.ndim - 2))
    pos = x.relu()
    return pos + a * (x - pos)


def elu(input, alpha=1.0, inplace=False):
    return _elu(_t(input), alpha)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    return _elu(_t(input), SELU_ALPHA, SELU_SCALE)


def celu(input, alpha=1.0, inplace=False):
    x = _t(input)
    return x.relu() + (alpha * ((x / alpha).clamp(max=0).exp() - 1))


def gelu(input, approximate="none"):
    return _gelu(_t(input), approximate)


def silu(input, inplace=False):
    return _silu(_t(input))


swish = silu


def mish(input):
    x = _t(input)
    return x * softplus(x).tanh()


def sigmoid(input):
    return _t(input).sigmoid()


def tanh(input):
    return _t(input).tanh()


def softplus(input, beta=1.0, threshold=20.0):
    return _softplus(_t(input), beta, threshold)


def logsigmoid(input):
    return _logsigmoid(_t(input))


def softsign(input):
    x = _t(input)
    return x / (1 + x.abs())


def _softmax_dim(ndim):
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, dtype=None):
    x = _t(input)
    if dtype is not None:
        x = x.to(dtype)
    return x.softmax(_softmax_dim(x.ndim) if dim is None else dim)


def log_softmax(input, dim=None, dtype=None):
    x = _t(input)
    if dtype is not None:
        x = x.to(dtype)
    return x.log_softmax(_softmax_dim(x.ndim) if dim is None else dim)


def softmin(input, dim=None):
    return softmax(-_t(input), dim)


def maxout(input, pool_size, dim=1):
    """Maxout: split ``dim`` (size C) into C / pool_size groups of ``pool_size`` consecutive
    channels and keep each group's maximum."""
    x = _t(input)
    d = dim % x.ndim
    c = x.shape[d]
    if pool_size <= 0 or c % pool_size:
        raise ValueError(f"maxout: dim {dim} has size {c}, which is not a multiple of pool_size {pool_size}")
    shape = x.shape[:d] + (c // pool_size, pool_size) + x.shape[d + 1:]
    return x.reshape(shape).amax(d + 1)


# ----------------------------------------------------------------------------- dropout


def _check_p(p, op):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got p={p}")


def _mask(shape, p, dtype):
    if p >= 1.0:
        return np.zeros(shape, dtype)
    keep = generator().random(shape, dtype=np.float64 if dtype == np.float64 else np.float32) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype)


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by
    1 / (1 - p), so evaluation needs no rescaling. Identity when not ``training``."""
    _check_p(p, "dropout")
    x = _t(input)
    if not training or p == 0.0:
        return x
    return scale_by_mask(x, _mask(x.shape, p, x.dtype))


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Spatial dropout: zero whole channels of (N, C, H, W) (or unbatched (C, H, W)) inputs."""
    _check_p(p, "dropout2d")
    x = _t(input)
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: 'input' must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if not training or p == 0.0:
        return x
    shape = x.shape[:-2] + (1, 1)
    return scale_by_mask(x, _mask(shape, p, x.dtype))


def dropout1d(input, p=0.5, training=True, inplace=False):
    _check_p(p, "dropout1d")
    x = _t(input)
    if x.ndim not in (2, 3):
        raise ValueError(f"dropout1d: 'input' must be 2-D (C, L) or 3-D (N, C, L), got shape {tuple(x.shape)}")
    if not training or p == 0.0:
        return x
    return scale_by_mask(x, _mask(x.shape[:-1] + (1,), p, x.dtype))


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for SELU networks: keeps mean and variance of the activations."""
    _check_p(p, "alpha_dropout")
    x = _t(input)
    if not training or p == 0.0:
        return x
    alpha_p = -SELU_ALPHA * SELU_SCALE
    keep = (generator().random(x.shape) >= p).astype(x.dtype)
    a = (1 - p + alpha_p**2 * p * (1 - p)) ** -0.5
    b = -a * alpha_p * p
    return scale_by_mask(x, keep * a) + (1 - keep) * (a * alpha_p) + b


# ----------------------------------------------------------------------------- normalisation


class _NormalizeB(Node):
    """x_hat = (x - mean) / sqrt(var + eps) over ``axes`` (biased variance)."""

    __slots__ = ("axes",)

    def backward(self, g):
        xhat, rstd = self.saved
        axes = self.axes
        gm = g.mean(axis=axes, keepdims=True)
        gxm = (g * xhat).mean(axis=axes, keepdims=True)
        return (rstd * (g - gm - xhat * gxm),)


def _normalize(x, axes, eps):
    """(x_hat Tensor, mean, biased var) with statistics over ``axes`` (kept dims)."""
    d = x._data
    mean = d.mean(axis=axes, keepdims=True)
    c = d - mean
    var = (c * c).mean(axis=axes, keepdims=True)
    rstd = (1.0 / np.sqrt(var + eps)).astype(d.dtype, copy=False)
    xhat = c * rstd
    if _GM.enabled and x._rg:
        n = _node(_NormalizeB, (_edge(x),), (xhat, rstd))
        n.axes = axes
        return _result(xhat, n), mean, var
    return _plain(xhat), mean, var


def _channel_shape(x, c):
    return (1, c) + (1,) * (x.ndim - 2)


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * _t(weight).reshape(shape)
    if bias is not None:
        y = y + _t(bias).reshape(shape)
    return y


class _BatchNormB(Node):
    """Fused batch norm (+ optional activation): one Rust pass for the three gradients."""

    __slots__ = ("training", "act", "bounds")
    fresh_grads = True  # the kernel's three new outputs

    def backward(self, g):
        x, w, b, mean, invstd = self.saved
        ex, ew, eb = self.inputs
        needs = tuple(n for n, e in zip(("input", "weight", "bias"), (ex, ew, eb)) if e is not None)
        return _norm_ops.batch_norm_backward(g, x, mean, invstd, w, b, self.training, activation=self.act,
                                             hardtanh_bounds=self.bounds, needs=needs)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, activation=None, hardtanh_bounds=(-1.0, 1.0)):
    """Batch normalisation over (N, C) or (N, C, *) inputs, per channel C.

    training: normalise with the batch mean and biased variance, and (if running stats are
    given) update them in place: ``running = (1 - momentum) * running + momentum * batch``
    with the *unbiased* batch variance (PyTorch's convention; the course's EWMA with
    beta = 1 - momentum). Otherwise normalise with the running statistics.

    ``activation`` (oxinet extension: None, "relu", "relu6" or "hardtanh" with
    ``hardtanh_bounds``) is applied in the same fused pass. Runs on
    :func:`oxinet.ops.batch_norm` forward and :func:`oxinet.ops.batch_norm_backward`.
    """
    x = _t(input, "input", "batch_norm")
    _float_check(x, "input", "batch_norm")
    if x.ndim < 2:
        raise ValueError(f"batch_norm: 'input' must be (N, C) or (N, C, *), got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, v in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if v is not None and tuple(np.shape(_arr(v))) != (c,):
            raise ValueError(f"batch_norm: '{name}' has shape {tuple(np.shape(_arr(v)))} but input has {c} "
                             f"channels (shape {tuple(x.shape)})")
    if training:
        count = x.numel() // c if c else 0
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"shape {tuple(x.shape)}")
    elif running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    wt = None if weight is None else _t(weight, "weight", "batch_norm")
    bt = None if bias is None else _t(bias, "bias", "batch_norm")
    wd = None if wt is None else wt._data
    bd = None if bt is None else bt._data
    rm = None if running_mean is None else _arr(running_mean)
    rv = None if running_var is None else _arr(running_var)
    y, mean, invstd = _norm_ops.batch_norm(x._data, rm, rv, wd, bd, training, momentum, eps, activation=activation,
                                           hardtanh_bounds=hardtanh_bounds, return_stats=True)
    if _GM.enabled and (x._rg or (wt is not None and wt._rg) or (bt is not None and bt._rg)):
        n = _node(_BatchNormB, (_edge(x), None if wt is None else _edge(wt), None if bt is None else _edge(bt)),
                  (x._data, wd, bd, mean, invstd))
        n.training = bool(training)
        n.act = activation
        n.bounds = hardtanh_bounds
        return _result(y, n)
    return _plain(y)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalise each (sample, channel) plane of (N, C, *) inputs over its spatial dims."""
    x = _t(input, "input", "instance_norm")
    _float_check(x, "input", "instance_norm")
    if x.ndim < 3:
        raise ValueError(f"instance_norm: 'input' must be (N, C, *spatial), got shape {tuple(x.shape)}")
    c = x.shape[1]
    shape = _channel_shape(x, c)
    axes = tuple(range(2, x.ndim))
    if use_input_stats:
        y, mean, var = _normalize(x, axes, eps)
        if running_mean is not None and running_var is not None:
            count = int(np.prod(x.shape[2:]))
            rm, rv = _arr(running_mean), _arr(running_var)
            rm *= 1 - momentum
            rm += momentum * mean.reshape(x.shape[0], c).mean(0)
            rv *= 1 - momentum
            rv += momentum * (var.reshape(x.shape[0], c) * (count / max(count - 1, 1))).mean(0)
    else:
        rm = _arr(running_mean).reshape(shape)
        rstd = 1.0 / np.sqrt(_arr(running_var).reshape(shape) + eps)
        y = (x - rm.astype(x.dtype)) * rstd.astype(x.dtype)
    return _affine(y, weight, bias, shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing dims ``normalized_shape`` of each sample."""
    x = _t(input, "input", "layer_norm")
    _float_check(x, "input", "layer_norm")
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or x.shape[x.ndim - k:] != ns or x.ndim < k:
        raise ValueError(f"layer_norm: 'input' has shape {tuple(x.shape)}, which does not end with "
                         f"normalized_shape {ns}")
    y, _, _ = _normalize(x, tuple(range(x.ndim - k, x.ndim)), eps)
    if weight is not None:
        y = y * _t(weight)
    if bias is not None:
        y = y + _t(bias)
    return y


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Split the C channels of (N, C, *) into ``num_groups`` groups and normalise each group of
    each sample; the affine parameters are per channel."""
    x = _t(input, "input", "group_norm")
    _float_check(x, "input", "group_norm")
    if x.ndim < 2:
        raise ValueError(f"group_norm: 'input' must be (N, C, *), got shape {tuple(x.shape)}")
    n, c = x.shape[:2]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: num_channels {c} must be divisible by num_groups {num_groups}")
    g = x.reshape(n, num_groups, -1)
    y, _, _ = _normalize(g, (2,), eps)
    y = y.reshape(x.shape)
    return _affine(y, weight, bias, _channel_shape(x, c))


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """x / max(||x||_p, eps) along ``dim``."""
    x = _t(input)
    return x / x.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """x1 . x2 / (max(||x1||, eps) * max(||x2||, eps)) along ``dim``."""
    a, b = _t(x1), _t(x2)
    n1 = a.norm(2, dim).clamp(min=eps)
    n2 = b.norm(2, dim).clamp(min=eps)
    return (a * b).sum(dim) / (n1 * n2)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    d = _t(x1) - _t(x2) + eps
    return d.norm(p, -1, keepdim)


def one_hot(tensor, num_classes=-1):
    """int64 one-hot encoding with a new last dim of size ``num_classes`` (max + 1 if -1)."""
    t = _arr(tensor)
    if t.dtype.kind not in "iu":
        raise TypeError(f"one_hot: 'tensor' must hold integer class indices, got dtype {t.dtype}")
    if num_classes == -1:
        num_classes = int(t.max()) + 1 if t.size else 0
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got min {t.min()} max {t.max()}")
    return _plain(np.eye(num_classes, dtype=np.int64)[t])


# ----------------------------------------------------------------------------- losses


def _same_shape(x, y, op, name="target"):
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(
            f"{op}: '{name}' has shape {tuple(y.shape)} but 'input' has shape {tuple(x.shape)}; they must match"
        )


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean squared error (x - y)^2."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "mse_loss")
    d = x - y
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean absolute error |x - y|."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "l1_loss")
    return _reduce((x - y).abs(), reduction, "l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    if delta <= 0:
        raise ValueError(f"huber_loss: 'delta' must be positive, got {delta}")
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "huber_loss")
    d = x - y
    a = d.abs()
    loss = where(a._data < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return _reduce(loss, reduction, "huber_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (L1 when beta = 0)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: 'beta' must be non-negative, got {beta}")
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "smooth_l1_loss")
    d = x - y
    a = d.abs()
    if beta == 0:
        return _reduce(a, reduction, "smooth_l1_loss")
    loss = where(a._data < beta, (0.5 / beta) * d * d, a - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-w [y log x + (1 - y) log(1 - x)] for probabilities x in [0, 1] (logs clamped at -100
    like PyTorch)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "binary_cross_entropy")
    xd = x._data
    if xd.size and (np.nanmin(xd) < 0 or np.nanmax(xd) > 1):
        raise ValueError("binary_cross_entropy: all elements of 'input' should be between 0 and 1")
    with np.errstate(divide="ignore"):
        loss = -(y * x.log().clamp(min=-100) + (1 - y) * (1 - x).log().clamp(min=-100))
    if weight is not None:
        loss = loss * _t(weight, "weight")
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """BCE on logits, computed stably:
    (1 - y) x + (1 + (pos_weight - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "binary_cross_entropy_with_logits")
    from oxinet.nn._loss_fn import BCE_RUST_MAX, BCEWithLogitsFn

    extra = [a for a in (y, weight, pos_weight) if isinstance(a, Tensor)]
    if (x.numel() <= BCE_RUST_MAX and x.dtype.kind == "f" and y.dtype.kind == "f" and reduction in _REDUCTIONS
            and not any(a._rg for a in extra)):
        return BCEWithLogitsFn.apply(x, y._data, _arr(weight), _arr(pos_weight), reduction)
    sp = softplus(-x)  # log(1 + exp(-x)), stable
    if pos_weight is not None:
        lw = (_t(pos_weight, "pos_weight") - 1) * y + 1
        loss = (1 - y) * x + lw * sp
    else:
        loss = (1 - y) * x + sp
    if weight is not None:
        loss = loss * _t(weight, "weight")
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def _class_targets(x, target, op):
    """Move the class dim last: (M, C) log-probs, (M,) int targets, target shape."""
    t = _arr(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'target' must hold integer class indices, got dtype {t.dtype}")
    if x.ndim == 1:
        if t.ndim != 0:
            raise ValueError(f"{op}: 'target' must be a scalar for an unbatched input of shape {tuple(x.shape)}, "
                             f"got shape {t.shape}")
        return x.reshape(1, -1), t.reshape(1), ()
    if x.ndim < 2:
        raise ValueError(f"{op}: 'input' must be (C,), (N, C) or (N, C, d1, ...), got shape {tuple(x.shape)}")
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if t.shape != expected:
        raise ValueError(f"{op}: 'target' has shape {t.shape} but input of shape {tuple(x.shape)} needs "
                         f"target shape {expected}")
    if x.ndim > 2:
        x = x.movedim(1, -1).reshape(-1, x.shape[1])
    return x, t.reshape(-1), expected


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of the target classes given log-probabilities ``input``
    (C,), (N, C) or (N, C, d1, ...). Mean reduction divides by the summed weights of the
    non-ignored targets."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "nll_loss")
    x = _t(input, "input", "nll_loss")
    logp, t, tshape = _class_targets(x, target, "nll_loss")
    c = logp.shape[1]
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(f"nll_loss: target {int(t[bad][0])} is out of bounds for {c} classes")
    safe = np.where(valid, t, 0)
    w = np.ones(c, logp.dtype) if weight is None else _arr(weight).astype(logp.dtype)
    if w.shape != (c,):
        raise ValueError(f"nll_loss: 'weight' has shape {w.shape}, expected ({c},)")
    wt = w[safe] * valid
    picked = logp[np.arange(len(safe)), safe]
    loss = -picked * wt
    if reduction == "none":
        return loss.reshape(tshape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / wt.sum()


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits ``input`` (C,), (N, C) or (N, C, d1, ...) against class
    indices, or against class probabilities of the input's shape. ``label_smoothing`` mixes
    the target with the uniform distribution as PyTorch does."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: 'label_smoothing' must be in [0, 1], got {label_smoothing}")
    x = _t(input, "input", "cross_entropy")
    _float_check(x, "input", "cross_entropy")
    t_arr = _arr(target)
    if x.ndim >= 1 and not (isinstance(weight, Tensor) and weight._rg):
        from oxinet.nn._loss_fn import CrossEntropyFn

        try:  # the fused Rust kernel (see _loss_fn for the measurements)
            return CrossEntropyFn.apply(x, t_arr, _arr(weight), ignore_index, reduction, label_smoothing)
        except (ValueError, TypeError, IndexError):
            pass  # invalid arguments: the NumPy path below raises the documented error
    return _cross_entropy_fused(x, t_arr, weight, ignore_index, reduction, label_smoothing)


class _CrossEntropyB(Node):
    """Fused softmax cross-entropy: with q the weighted (smoothed) target distribution of a
    sample and p its softmax, d loss / d logits = (sum(q) p - q) * scale."""

    __slots__ = ("layout", "reduction")

    def backward(self, g):
        p, q, scale = self.saved
        if self.reduction == "none":
            gs = (g.reshape(-1) * scale)[:, None]
        else:
            gs = np.asarray(g * scale).reshape(1, 1)
        gz = (q.sum(1, keepdims=True) * p - q) * gs
        shape, moved = self.layout
        if moved:  # (M, C) back to (N, d1, ..., C) then (N, C, d1, ...)
            gz = np.moveaxis(gz.reshape(shape[:1] + shape[2:] + shape[1:2]), -1, 1)
        return (gz.reshape(shape),)


def _cross_entropy_fused(x, t_arr, weight, ignore_index, reduction, label_smoothing):
    xd = x._data
    cdim = 0 if xd.ndim == 1 else 1
    c = xd.shape[cdim]
    moved = xd.ndim > 2
    z = np.moveaxis(xd, 1, -1).reshape(-1, c) if moved else xd.reshape(-1, c)
    zmax = z.max(1, keepdims=True) if z.size else z[:, :1]
    e = np.exp(z - zmax)
    sumexp = e.sum(1, keepdims=True)
    logp = (z - zmax) - np.log(sumexp)
    p = e / sumexp
    w = None if weight is None else _arr(weight).astype(xd.dtype, copy=False)
    if w is not None and w.shape != (c,):
        raise ValueError(f"cross_entropy: 'weight' has shape {w.shape}, expected ({c},)")
    eps = float(label_smoothing)
    if t_arr.dtype.kind == "f":  # class probabilities of the input's shape
        _same_shape(x, t_arr, "cross_entropy")
        tp = t_arr.astype(xd.dtype, copy=False)
        tp = np.moveaxis(tp, 1, -1).reshape(-1, c) if moved else tp.reshape(-1, c)
        if eps > 0:
            tp = tp * (1 - eps) + eps / c
        q = tp * w if w is not None else tp
        out_shape = (xd.shape[0],) + xd.shape[2:] if xd.ndim > 1 else ()
        denom = float(len(z))
    else:
        _, t, out_shape = _class_targets(x, t_arr, "cross_entropy")
        valid = t != ignore_index
        bad = valid & ((t < 0) | (t >= c))
        if bad.any():
            raise IndexError(f"cross_entropy: target {int(t[bad][0])} is out of bounds for {c} classes")
        safe = np.where(valid, t, 0)
        rows = np.arange(len(t))
        wt = (w[safe] if w is not None else np.ones(len(t), xd.dtype)) * valid
        q = np.zeros_like(z)
        q[rows, safe] = (1 - eps) * wt
        if eps > 0:
            q += (eps / c) * (w if w is not None else 1.0) * valid[:, None].astype(xd.dtype)
        denom = float(wt.sum())
    losses = -(q * logp).sum(1)
    if reduction == "none":
        out = losses.reshape(out_shape)
        scale = 1.0
    elif reduction == "sum":
        out = losses.sum()
        scale = 1.0
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.asarray(losses.sum() / denom, dtype=xd.dtype)
        scale = 1.0 / denom if denom else np.nan
    out = np.asarray(out, dtype=xd.dtype)
    if _GM.enabled and x._rg:
        n = _node(_CrossEntropyB, (_edge(x),), (p, q, scale))
        n.layout = (xd.shape, moved)
        n.reduction = reduction
        return _result(out, n)
    return _plain(out)


def _cross_entropy_composite(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The same loss written with Tensor ops (log_softmax + nll_loss); kept as a reference."""
    x = _t(input, "input", "cross_entropy")
    cdim = 0 if x.ndim == 1 else 1
    logp = x.log_softmax(cdim)
    c = x.shape[cdim]
    t_arr = _arr(target)
    if t_arr.dtype.kind == "f":  # class probabilities
        _same_shape(x, t_arr, "cross_entropy")
        tp = t_arr.astype(x.dtype, copy=False)
        if label_smoothing > 0:
            tp = tp * (1 - label_smoothing) + label_smoothing / c
        wshape = [1] * x.ndim
        wshape[cdim] = c
        prod = logp * tp
        if weight is not None:
            prod = prod * _arr(weight).astype(x.dtype).reshape(wshape)
        loss = -prod.sum(cdim)
        if reduction == "mean":
            return loss.sum() / (x.numel() // c if c else 1)
        return _reduce(loss, reduction, "cross_entropy")
    nll = nll_loss(logp, t_arr, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing <= 0:
        return nll
    lp, t, tshape = _class_targets(logp, t_arr, "cross_entropy")
    valid = t != ignore_index
    if weight is not None:
        w = _arr(weight).astype(x.dtype)
        smooth = -(lp * w).sum(1)
    else:
        smooth = -lp.sum(1)
    smooth = smooth * valid
    if reduction == "none":
        smooth = smooth.reshape(tshape)
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        if weight is not None:
            denom = w[np.where(valid, t, 0)][valid].sum()
        else:
            denom = valid.sum()
        smooth = smooth.sum() / denom
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / c)



def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """Multiclass hinge (SVM) loss: per sample sum over i != y of
    max(0, margin - x[y] + x[i])^p / C (times weight[y])."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: 'p' must be 1 or 2, got {p}")
    x = _t(input, "input", "multi_margin_loss")
    xs, t, tshape = _class_targets(x, target, "multi_margin_loss")
    if x.ndim > 2:
        raise ValueError(f"multi_margin_loss: 'input' must be (C,) or (N, C), got shape {tuple(x.shape)}")
    n, c = xs.shape
    if ((t < 0) | (t >= c)).any():
        raise IndexError(f"multi_margin_loss: target out of bounds for {c} classes")
    rows = np.arange(n)
    xy = xs[rows, t].reshape(n, 1)
    m = (margin - xy + xs).clamp(min=0)
    not_y = np.ones((n, c), x.dtype)
    not_y[rows, t] = 0
    m = m * not_y
    if p == 2:
        m = m * m
    if weight is not None:
        m = m * _arr(weight).astype(x.dtype)[t].reshape(n, 1)
    loss = m.sum(1) / c
    if x.ndim == 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction, "multi_margin_loss")


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with d the pairwise p-norm distance."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    a, pos, neg = _t(anchor, "anchor"), _t(positive, "positive"), _t(negative, "negative")
    _same_shape(a, pos, "triplet_margin_loss", "positive")
    _same_shape(a, neg, "triplet_margin_loss", "negative")
    d_ap = pairwise_distance(a, pos, p, eps)
    d_an = pairwise_distance(a, neg, p, eps)
    if swap:
        d_pn = pairwise_distance(pos, neg, p, eps)
        d_an = d_an.minimum(d_pn)
    loss = (d_ap - d_an + margin).clamp(min=0)
    return _reduce(loss, reduction, "triplet_margin_loss")


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) for y = 1; max(0, cos(x1, x2) - margin) for y = -1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x1, x2 = _t(input1, "input1"), _t(input2, "input2")
    _same_shape(x1, x2, "cosine_embedding_loss", "input2")
    y = _arr(target)
    eps = 1e-12
    dim = x1.ndim - 1
    prod = (x1 * x2).sum(dim)
    m1 = (x1 * x1).sum(dim) + eps
    m2 = (x2 * x2).sum(dim) + eps
    cos = prod / (m1 * m2).sqrt()
    if y.shape != tuple(cos.shape):
        raise ValueError(f"cosine_embedding_loss: 'target' has shape {y.shape}, expected {tuple(cos.shape)}")
    loss = where(y == 1, 1 - cos, 0.0) + where(y == -1, (cos - margin).clamp(min=0), 0.0)
    return _reduce(loss, reduction, "cosine_embedding_loss")


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = (-_t(target) * (_t(input1) - _t(input2)) + margin).clamp(min=0)
    return _reduce(loss, reduction, "margin_ranking_loss")


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x = _t(input)
    y = _arr(target)
    loss = where(y == 1, x, 0.0) + where(y == -1, (margin - x).clamp(min=0), 0.0)
    return _reduce(loss, reduction, "hinge_embedding_loss")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL divergence with ``input`` given as log-probabilities: target (log target - input),
    0 where target = 0. ``reduction='batchmean'`` divides the sum by the batch size (the
    mathematically correct KL); ``'mean'`` averages over all elements like PyTorch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"kl_div: 'reduction' must be one of {_REDUCTIONS + ('batchmean',)}, got {reduction!r}")
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "kl_div")
    if log_target:
        loss = y.exp() * (y - x)
    elif y.requires_grad:
        pos = y._data > 0
        safe = where(pos, y, 1.0)
        loss = where(pos, y * (safe.log() - x), 0.0)
    else:
        yd = y._data
        with np.errstate(divide="ignore", invalid="ignore"):
            ylogy = np.where(yd > 0, yd * np.log(np.where(yd > 0, yd, 1)), 0).astype(x.dtype, copy=False)
        loss = ylogy - y * x
        loss = where(yd > 0, loss, 0.0) if (yd <= 0).any() else loss
    if reduction == "batchmean":
        return loss.sum() / (x.shape[0] if x.ndim else 1)
    return _reduce(loss, reduction, "kl_div")


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """Poisson negative log-likelihood: exp(x) - y x (``log_input``) or x - y log(x + eps);
    ``full`` adds the Stirling term y log y - y + 0.5 log(2 pi y) where y > 1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "poisson_nll_loss")
    loss = x.exp() - y * x if log_input else x - y * (x + eps).log()
    if full:
        yd = y._data
        safe = np.where(yd > 1, yd, 1.0)
        stirling = np.where(yd > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe), 0.0)
        loss = loss + stirling.astype(x.dtype, copy=False)
    return _reduce(loss, reduction, "poisson_nll_loss")


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """Focal loss on logits (torchvision.ops.sigmoid_focal_loss):
    alpha_t (1 - p_t)^gamma BCE(x, y); ``alpha < 0`` disables the weighting."""
    x, y = _t(inputs, "inputs"), _t(targets, "targets")
    _same_shape(x, y, "sigmoid_focal_loss", "targets")
    p = x.sigmoid()
    ce = binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return _reduce(loss, reduction, "sigmoid_focal_loss")


def dice_loss(input, target, smooth=1.0, reduction="mean"):
    """1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth) per sample, sums over all dims
    but the first; ``input`` holds probabilities (apply sigmoid/softmax first)."""
    x, y = _t(input), _t(target, "target")
    _same_shape(x, y, "dice_loss")
    if x.ndim == 0:
        raise ValueError("dice_loss: 'input' must have a batch dimension")
    dims = tuple(range(1, x.ndim)) if x.ndim > 1 else None
    inter = (x * y).sum(dims)
    total = x.sum(dims) + y.sum(dims)
    loss = 1 - (2 * inter + smooth) / (total + smooth)
    return _reduce(loss, reduction, "dice_loss")


# ----------------------------------------------------------------------------- kernel-backed layers

from oxinet.nn._spatial_fn import *  # noqa: E402,F401,F403
from oxinet.nn._seq_fn import *  # noqa: E402,F401,F403
