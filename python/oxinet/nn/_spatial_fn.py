"""``nn.functional`` entries over the spatial kernels of :mod:`oxinet.ops`: convolution,
transposed convolution, pooling, unpooling, resizing and fold/unfold.

Each is an :class:`oxinet.autograd.Function` whose ``forward`` calls the op and whose
``backward`` calls the op's ``*_backward``; nothing here computes a convolution or a
pooling window itself. Names, arguments and defaults follow ``torch.nn.functional``.
Star-imported into :mod:`oxinet.nn.functional`.
"""

from __future__ import annotations

import numpy as np

from oxinet import _core, ops
from oxinet.autograd.function import Function
from oxinet.tensor import Tensor, _plain

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "max_pool1d", "max_pool2d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices", "global_avg_pool2d", "global_max_pool2d",
    "max_unpool1d", "max_unpool2d", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
    "fold", "unfold",
]


def _t(x):
    if isinstance(x, Tensor):
        return x
    return _plain(np.asarray(x))


def _needs(ctx, names):
    return tuple(n for n, need in zip(names, ctx.needs_input_grad) if need)


# ----------------------------------------------------------------------------- convolution


_CONV = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}
_CONV_B = {1: ops.conv1d_backward, 2: ops.conv2d_backward, 3: ops.conv3d_backward}
_CONVT = {1: ops.conv_transpose1d, 2: ops.conv_transpose2d, 3: ops.conv_transpose3d}
_CONVT_B = {1: ops.conv_transpose1d_backward, 2: ops.conv_transpose2d_backward, 3: ops.conv_transpose3d_backward}


# Convolutions with small output planes (at most this many positions) run as one GEMM over
# the whole batch with the channels moved outermost, (C * kh * kw, N * L), instead of one
# small GEMM per image: W (C_out, C*kh*kw) @ columns. 1x1 stride-1 unpadded ones use the
# input itself as the columns; others go through im2col (and col2im for the input
# gradient). MobileNet v2 at 64x64 (its 8x8..2x2 stages) and ResNet-18 at 32x32 (4x4..1x1
# stages) spend most of their convolution time in such layers.
_PW_MAX_PLANE = 64
_IM2COL_MAX_PLANE = 16
_IM2COL_MAX_VALUES = 1 << 25
# im2col columns up to this size are kept for the backward instead of rebuilt (ResNet-18's
# 4x4 stage at batch 64: 4.7 MB per layer)
_KEEP_COLS_BYTES = 16 << 20
_PW_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _pair(v):
    if type(v) is int:
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(type(i) is int for i in v):
        return tuple(v)
    return None


def _batched_plan(x, w, b, nd, stride, padding, dilation, groups):
    """How conv(x, w, b) runs as one batched GEMM: None (not applicable: use the conv ops),
    or ``(kind, kernel, stride, padding, dilation, (oh, ow))`` with kind "pointwise" (1x1,
    stride 1, unpadded) or "im2col". Needs an ungrouped 2-D convolution of a batch (N > 1)
    in one float dtype with integer geometry and a small output plane."""
    if not (nd == 2 and groups == 1 and type(x) is np.ndarray and type(w) is np.ndarray
            and x.ndim == 4 and w.ndim == 4 and x.dtype in _PW_DTYPES and w.dtype == x.dtype
            and w.shape[1] == x.shape[1] and x.shape[0] > 1 and x.shape[1] > 0 and w.shape[0] > 0
            and (b is None or (type(b) is np.ndarray and b.dtype == x.dtype and b.shape == (w.shape[0],)))):
        return None
    kh, kw = w.shape[2], w.shape[3]
    if padding == "valid" or (padding == "same" and kh == 1 and kw == 1):
        padding = 0
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    if s is None or p is None or d is None or min(s) < 1 or min(d) < 1 or min(p) < 0 or kh < 1 or kw < 1:
        return None
    h, wd = x.shape[2], x.shape[3]
    oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    kind = "pointwise" if (kh == 1 and kw == 1 and s == (1, 1) and p == (0, 0)) else "im2col"
    if oh < 1 or ow < 1 or oh * ow > (_PW_MAX_PLANE if kind == "pointwise" else _IM2COL_MAX_PLANE):
        return None
    if kind == "im2col" and x.shape[1] * kh * kw * x.shape[0] * oh * ow > _IM2COL_MAX_VALUES:
        return None  # the columns of a huge batch: the conv ops tile them instead
    if kind == "im2col" and _core.conv_uses_dense_path(
            (x.shape[0], x.shape[1], 1, h, wd), (w.shape[0], w.shape[1], 1, kh, kw), (1,) + s, (1,) + d,
            (0,) + p, (0,) + p, 1):
        return None  # planes smaller than the kernel: the conv ops unfold the weights instead
    return kind, (kh, kw), s, p, d, (oh, ow)


def _swap_kernel(dtype):
    from oxinet import _core
    return _core.swap_leading_axes_f32 if dtype == np.float32 else _core.swap_leading_axes_f64


def _swap(a: np.ndarray, rows: int, cols: int, k: int) -> np.ndarray:
    """``a`` viewed as (rows, cols, k) -> a C-contiguous (cols, rows * k) copy."""
    out = ops._checks.empty((cols, rows * k), a.dtype)
    _swap_kernel(a.dtype)(np.ascontiguousarray(a), rows, cols, k, out)
    return out


def _im2col_batched(x, k, s, p, d):
    """Columns of the whole batch, (C * kh * kw, N * oh * ow) (images side by side)."""
    from oxinet import _core
    n, c, h, wd = x.shape
    xt = _swap(x, n, c, h * wd)
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (wd + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = ops._checks.empty((c * k[0] * k[1], n * oh * ow), x.dtype)
    f = _core.im2col_batched_f32 if x.dtype == np.float32 else _core.im2col_batched_f64
    f(xt, c, n, h, wd, list(k), list(s), list(d), list(p), cols)
    return cols


def _col2im_batched(cols2, shape, k, s, p, d):
    """Adjoint of :func:`_im2col_batched`: (C * kh * kw, N * L) columns summed back into
    (N, C, H, W)."""
    from oxinet import _core
    n, c, h, wd = shape
    xt = ops._checks.empty((c, n * h * wd), cols2.dtype)
    f = _core.col2im_batched_f32 if cols2.dtype == np.float32 else _core.col2im_batched_f64
    f(np.ascontiguousarray(cols2), c, n, h, wd, list(k), list(s), list(d), list(p), xt)
    return _swap(xt, c, n, h * wd).reshape(n, c, h, wd)


class _ConvFn(Function):
    fresh_grads = True  # kernel outputs, swaps and GEMM results, each returned once

    @staticmethod
    def forward(ctx, x, w, b, nd, stride, padding, dilation, groups):
        plan = _batched_plan(x, w, b, nd, stride, padding, dilation, groups)
        if plan is not None:
            kind, k, s, p, d, (oh, ow) = plan
            n, c = x.shape[:2]
            if kind == "pointwise":
                cols2 = _swap(x, n, c, oh * ow)
            else:
                cols2 = _im2col_batched(x, k, s, p, d)
            y2 = ops.matmul(w.reshape(w.shape[0], -1), cols2)
            if b is not None:
                y2 += b[:, None]
            # pointwise: the columns are the input, reordered; im2col columns are up to
            # kh*kw times larger than the input, so the backward rebuilds them from it
            # unless they are small enough to keep
            keep = kind == "pointwise" or cols2.nbytes <= _KEEP_COLS_BYTES
            ctx.save_for_backward(cols2 if keep else x, w)
            ctx.args = ("batched", plan, x.shape, keep)
            return _swap(y2, w.shape[0], n, oh * ow).reshape(n, w.shape[0], oh, ow)
        ctx.save_for_backward(x, w)
        ctx.args = (nd, stride, padding, dilation, groups)
        return _CONV[nd](x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        if ctx.args[0] == "batched":
            return _batched_backward(ctx, dy, x, w)
        nd, stride, padding, dilation, groups = ctx.args
        needs = _needs(ctx, ("input", "weight", "bias"))
        dx, dw, db = _CONV_B[nd](dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                 needs=needs)
        return dx, dw, db, None, None, None, None, None


def _batched_backward(ctx, dy, saved, w):
    """Gradients of the batched-GEMM convolution from the saved columns (K, N * L)
    (pointwise) or input (im2col): dcols = W^T dY (then col2im unless pointwise),
    dW = dY cols^T, db = dY summed."""
    _, plan, shape, kept = ctx.args
    kind, k, s, p, d, (oh, ow) = plan
    n, c, h, wd = shape
    co, l = w.shape[0], oh * ow
    if type(dy) is not np.ndarray or dy.shape != (n, co, oh, ow):
        dy = np.broadcast_to(np.asarray(dy), (n, co, oh, ow))
    dtype = np.result_type(dy.dtype, w.dtype)
    if dtype not in _PW_DTYPES:
        raise TypeError(f"conv2d_backward: 'dy' has dtype {dy.dtype}, expected float32 or float64")
    dy2 = _swap(dy.astype(dtype, copy=False), n, co, l)
    w2 = w.reshape(co, -1).astype(dtype, copy=False)
    kdim = w2.shape[1]
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    dx = dw = db = None
    if need_x:
        dcols2 = ops.matmul(w2.T, dy2)
        if kind == "pointwise":
            dx = _swap(dcols2, kdim, n, l).reshape(n, c, h, wd)
        else:
            dx = _col2im_batched(dcols2, shape, k, s, p, d)
    if need_w:
        cols2 = saved if kept else _im2col_batched(saved, k, s, p, d)
        cols2 = cols2.astype(dtype, copy=False)
        # dW = dY cols^T. With a long contraction (N * L) it runs as cols dY^T with dY^T
        # copied out (small: C_out rows), as the GEMM reads a row-major right operand in
        # place but repacks a transposed one slowly (1152x1024 @ 1024x128: 337 -> 450
        # GFLOP/s); the (K, C_out) result is transposed back. With a short one, directly
        if co <= kdim and n * l > 256:
            dw = _swap(ops.matmul(cols2, _swap(dy2, co, n * l, 1)), kdim, co, 1).reshape(w.shape)
        else:
            dw = ops.matmul(dy2, cols2.T).reshape(w.shape)
    if need_b:
        db = dy2.sum(axis=1)
    return dx, dw, db, None, None, None, None, None


class _ConvTransposeFn(Function):
    @staticmethod
    def forward(ctx, x, w, b, nd, stride, padding, output_padding, groups, dilation):
        ctx.save_for_backward(x, w)
        ctx.args = (nd, stride, padding, output_padding, groups, dilation)
        return _CONVT[nd](x, w, b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                          dilation=dilation)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        nd, stride, padding, output_padding, groups, dilation = ctx.args
        needs = _needs(ctx, ("input", "weight", "bias"))
        dx, dw, db = _CONVT_B[nd](dy, x, w, stride=stride, padding=padding, output_padding=output_padding,
                                  groups=groups, dilation=dilation, needs=needs)
        return dx, dw, db, None, None, None, None, None, None


def _conv(nd, input, weight, bias, stride, padding, dilation, groups):
    b = None if bias is None else _t(bias)
    return _ConvFn.apply(_t(input), _t(weight), b, nd, stride, padding, dilation, groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution. input (N, C_in, L) or (C_in, L); weight (C_out, C_in/groups, k);
    padding an int, a 1-tuple, 'valid' or 'same'. Returns (N, C_out, L_out)."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation). input (N, C_in, H, W) or (C_in, H, W); weight
    (C_out, C_in/groups, kh, kw); bias (C_out,) or None; padding an int, a pair, 'valid'
    or 'same'. groups = C_in gives a depthwise convolution. Returns (N, C_out, H_out, W_out)."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution. input (N, C_in, D, H, W); weight (C_out, C_in/groups, kd, kh, kw)."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def _conv_t(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    b = None if bias is None else _t(bias)
    return _ConvTransposeFn.apply(_t(input), _t(weight), b, nd, stride, padding, output_padding, groups, dilation)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution; weight (C_in, C_out/groups, k)."""
    return _conv_t(1, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution; weight (C_in, C_out/groups, kh, kw);
    H_out = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1."""
    return _conv_t(2, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-D transposed convolution; weight (C_in, C_out/groups, kd, kh, kw)."""
    return _conv_t(3, input, weight, bias, stride, padding, output_padding, groups, dilation)


# ----------------------------------------------------------------------------- pooling


class _MaxPoolFn(Function):
    @staticmethod
    def forward(ctx, x, nd, kernel_size, stride, padding, dilation, ceil_mode):
        f = ops.max_pool1d if nd == 1 else ops.max_pool2d
        y, idx = f(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
        ctx.nd, ctx.idx, ctx.shape = nd, idx, x.shape
        return y, idx

    @staticmethod
    def backward(ctx, dy, _didx):
        f = ops.max_pool1d_backward if ctx.nd == 1 else ops.max_pool2d_backward
        return f(dy, ctx.idx, ctx.shape), None, None, None, None, None, None


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    y, idx = _MaxPoolFn.apply(_t(input), nd, kernel_size, stride, padding, dilation, ceil_mode)
    return (y, idx) if return_indices else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """1-D max pooling of (N, C, L) or (C, L); with ``return_indices`` also the int64 argmax
    positions (for :func:`max_unpool1d`)."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling of (N, C, H, W) or (C, H, W); ``stride`` defaults to ``kernel_size``;
    with ``return_indices`` also the int64 flat argmax indices ``h * W + w`` per plane."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, True)


class _AvgPoolFn(Function):
    @staticmethod
    def forward(ctx, x, nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        ctx.shape = x.shape
        ctx.args = (nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        if nd == 1:
            return ops.avg_pool1d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
        return ops.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)

    @staticmethod
    def backward(ctx, dy):
        nd, k, s, p, cm, cip, div = ctx.args
        if nd == 1:
            dx = ops.avg_pool1d_backward(dy, ctx.shape, k, s, p, cm, cip)
        else:
            dx = ops.avg_pool2d_backward(dy, ctx.shape, k, s, p, cm, cip, div)
        return (dx,) + (None,) * 7


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-D average pooling of (N, C, L) or (C, L)."""
    return _AvgPoolFn.apply(_t(input), 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling of (N, C, H, W) or (C, H, W)."""
    return _AvgPoolFn.apply(_t(input), 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override)


class _AdaptiveAvgFn(Function):
    @staticmethod
    def forward(ctx, x, nd, output_size):
        ctx.shape, ctx.nd = x.shape, nd
        f = ops.adaptive_avg_pool1d if nd == 1 else ops.adaptive_avg_pool2d
        return f(x, output_size)

    @staticmethod
    def backward(ctx, dy):
        f = ops.adaptive_avg_pool1d_backward if ctx.nd == 1 else ops.adaptive_avg_pool2d_backward
        return f(dy, ctx.shape), None, None


class _AdaptiveMaxFn(Function):
    @staticmethod
    def forward(ctx, x, nd, output_size):
        f = ops.adaptive_max_pool1d if nd == 1 else ops.adaptive_max_pool2d
        y, idx = f(x, output_size, return_indices=True)
        ctx.shape, ctx.nd, ctx.idx = x.shape, nd, idx
        return y, idx

    @staticmethod
    def backward(ctx, dy, _didx):
        f = ops.adaptive_max_pool1d_backward if ctx.nd == 1 else ops.adaptive_max_pool2d_backward
        return f(dy, ctx.idx, ctx.shape), None, None


def adaptive_avg_pool1d(input, output_size):
    """Adaptive average pooling of (N, C, L) to (N, C, output_size)."""
    return _AdaptiveAvgFn.apply(_t(input), 1, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Adaptive average pooling of (N, C, H, W) to (N, C, OH, OW); ``output_size`` an int or
    a pair (None keeps that input size)."""
    return _AdaptiveAvgFn.apply(_t(input), 2, output_size)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    y, idx = _AdaptiveMaxFn.apply(_t(input), 1, output_size)
    return (y, idx) if return_indices else y


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive max pooling of (N, C, H, W) to (N, C, OH, OW) [, int64 indices]."""
    y, idx = _AdaptiveMaxFn.apply(_t(input), 2, output_size)
    return (y, idx) if return_indices else y


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool1d(input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool2d(input, output_size, True)


def global_avg_pool2d(input, keepdim=True):
    """Mean over H and W: (N, C, H, W) -> (N, C, 1, 1), or (N, C) with ``keepdim=False``."""
    y = _AdaptiveAvgFn.apply(_t(input), 2, 1)
    return y if keepdim else y.flatten(-3 if y.ndim == 3 else 1)


def global_max_pool2d(input, keepdim=True):
    """Max over H and W: (N, C, H, W) -> (N, C, 1, 1), or (N, C) with ``keepdim=False``."""
    y, _ = _AdaptiveMaxFn.apply(_t(input), 2, 1)
    return y if keepdim else y.flatten(-3 if y.ndim == 3 else 1)


class _MaxUnpoolFn(Function):
    @staticmethod
    def forward(ctx, x, indices, nd, kernel_size, stride, padding, output_size):
        ctx.nd, ctx.idx = nd, indices
        f = ops.max_unpool1d if nd == 1 else ops.max_unpool2d
        return f(x, indices, kernel_size, stride, padding, output_size)

    @staticmethod
    def backward(ctx, dy):
        f = ops.max_unpool1d_backward if ctx.nd == 1 else ops.max_unpool2d_backward
        return f(dy, ctx.idx), None, None, None, None, None, None


def _idx(indices):
    return indices._data if isinstance(indices, Tensor) else np.asarray(indices)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of :func:`max_pool1d` given its indices."""
    return _MaxUnpoolFn.apply(_t(input), _idx(indices), 1, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of :func:`max_pool2d`: each value goes to its saved flat index, zeros elsewhere."""
    return _MaxUnpoolFn.apply(_t(input), _idx(indices), 2, kernel_size, stride, padding, output_size)


# ----------------------------------------------------------------------------- resizing, fold/unfold


class _InterpolateFn(Function):
    @staticmethod
    def forward(ctx, x, size, scale_factor, mode, align_corners, recompute_scale_factor):
        ctx.shape = x.shape
        ctx.args = (size, scale_factor, mode, align_corners, recompute_scale_factor)
        return ops.interpolate(x, size, scale_factor, mode, align_corners, recompute_scale_factor)

    @staticmethod
    def backward(ctx, dy):
        size, sf, mode, ac, rsf = ctx.args
        return (ops.interpolate_backward(dy, ctx.shape, size, sf, mode, ac, rsf),) + (None,) * 5


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, L) or (N, C, H, W) with mode 'nearest', 'linear' (3-D) or 'bilinear'
    (4-D), PyTorch's coordinate rules."""
    if antialias:
        raise ValueError("interpolate: 'antialias' is not supported")
    return _InterpolateFn.apply(_t(input), size, scale_factor, mode, align_corners, recompute_scale_factor)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Bilinear upsampling with ``align_corners=True`` (PyTorch's deprecated helper)."""
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)


class _UnfoldFn(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, dilation, padding, stride):
        ctx.size = x.shape[-2:]
        ctx.args = (kernel_size, dilation, padding, stride)
        return ops.unfold(x, kernel_size, dilation, padding, stride)

    @staticmethod
    def backward(ctx, dy):
        k, d, p, s = ctx.args
        return ops.fold(dy, ctx.size, k, d, p, s), None, None, None, None


class _FoldFn(Function):
    @staticmethod
    def forward(ctx, cols, output_size, kernel_size, dilation, padding, stride):
        ctx.args = (kernel_size, dilation, padding, stride)
        return ops.fold(cols, output_size, kernel_size, dilation, padding, stride)

    @staticmethod
    def backward(ctx, dy):
        k, d, p, s = ctx.args
        return ops.unfold(dy, k, d, p, s), None, None, None, None, None


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks as columns: (N, C, H, W) -> (N, C*kh*kw, L) (``im2col``)."""
    return _UnfoldFn.apply(_t(input), kernel_size, dilation, padding, stride)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum columns (N, C*kh*kw, L) back into (N, C, H, W) (``col2im``, the adjoint of unfold)."""
    return _FoldFn.apply(_t(input), output_size, kernel_size, dilation, padding, stride)

