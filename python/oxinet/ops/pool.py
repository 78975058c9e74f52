"""Pooling and unpooling on NCHW (and NCL) arrays, with ``torch.nn.functional`` semantics.

Every op takes batched ``(N, C, H, W)`` input or unbatched ``(C, H, W)`` (``(N, C, L)`` /
``(C, L)`` for the 1-D ops), float32 or float64, any strides, and returns the same
dtype. Each has a ``*_backward`` taking the output gradient ``dy`` and returning the
input gradient ``dx``. Max-style ops can return PyTorch's argmax indices: int64 flat
offsets ``h * W + w`` into each input plane (``l`` for 1-D), which the backward passes
and :func:`max_unpool2d` take.

Output size per spatial axis (PyTorch's rule)::

    out = floor((n + 2*padding - dilation*(kernel_size-1) - 1 + (stride-1 if ceil_mode)) / stride) + 1

and in ceil mode the last window must start inside the input or the left padding.
Padding must be at most half the kernel size. Max pooling pads with ``-inf``, a NaN in
a window wins (it propagates), ties go to the first position in row-major order.
"""

from __future__ import annotations

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, check_out, empty, kernel_for
from oxinet.ops._spatial import (
    as_planes,
    check_rank,
    float_input,
    index_array,
    int_tuple,
    planes,
    shape_tuple,
)

__all__ = [
    "max_pool1d", "max_pool1d_backward", "max_pool2d", "max_pool2d_backward",
    "avg_pool1d", "avg_pool1d_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool1d", "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool1d", "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
    "global_max_pool2d", "global_max_pool2d_backward",
    "max_unpool1d", "max_unpool1d_backward", "max_unpool2d", "max_unpool2d_backward",
    "pool_output_size",
]


def pool_output_size(n: int, kernel_size: int, stride: int, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """PyTorch's pooling output length for one axis (may be < 1 for impossible shapes)."""
    num = n + 2 * padding - dilation * (kernel_size - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    return out


# --------------------------------------------------------------------------- parameters

def _window(op, spatial, kernel_size, stride, padding, dilation=1):
    k = int_tuple(kernel_size, spatial, "kernel_size", op, 1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        s = k
    else:
        s = int_tuple(stride, spatial, "stride", op, 1)
    p = int_tuple(padding, spatial, "padding", op, 0)
    d = int_tuple(dilation, spatial, "dilation", op, 1)
    for kk, pp in zip(k, p):
        if pp > kk // 2:
            raise ValueError(
                f"{op}: 'padding' {padding!r} must be at most half of 'kernel_size' {kernel_size!r}"
            )
    if spatial == 1:  # 1-D ops run as 2-D ops on planes of height 1
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    return k, s, p, d


def _out_hw(op, shape, spatial, k, s, p, d, ceil_mode):
    _, h, w = planes(shape, spatial)
    oh = pool_output_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = pool_output_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{op}: 'kernel_size' {k[2 - spatial:]} (dilation {d[2 - spatial:]}, padding "
            f"{p[2 - spatial:]}) is larger than the padded input: 'x' has shape {tuple(shape)}, "
            f"output size would be {(oh, ow)[2 - spatial:]}"
        )
    return oh, ow


def _out_shape(shape, spatial, oh, ow):
    return tuple(shape[:-spatial]) + ((ow,) if spatial == 1 else (oh, ow))


def _input_shape(input_shape, spatial, op):
    shape = shape_tuple(input_shape, "input_shape", op)
    check_rank(shape, spatial, "input_shape", op)
    return shape


def _grad(dy, op):
    return as_float_array(dy, "dy", op)


def _check_dy(dy, expected, op):
    if dy.shape != tuple(expected):
        raise ValueError(f"{op}: 'dy' has shape {dy.shape}, expected {tuple(expected)}")


def _target(out, shape, spatial, dtype, op, *inputs):
    """(planes array the kernel writes, array to return): ``out`` itself when it is
    C-contiguous, else a fresh array copied into ``out`` afterwards (see _finish)."""
    p3 = planes(shape, spatial)
    if out is None:
        buf = empty(p3, dtype)
        return buf, buf.reshape(shape)
    check_out(out, shape, dtype, op, *inputs)
    if out.flags.c_contiguous:
        return out.reshape(p3), out
    return np.empty(p3, dtype), out


def _finish(buf, result):
    if not np.shares_memory(buf, result):
        result[...] = buf.reshape(result.shape)
    return result


# --------------------------------------------------------------------------- max pooling

def _max_pool(op, x, spatial, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
              out=None):
    x = float_input(x, "x", op, spatial)
    k, s, p, d = _window(op, spatial, kernel_size, stride, padding, dilation)
    oh, ow = _out_hw(op, x.shape, spatial, k, s, p, d, ceil_mode)
    x3 = as_planes(x, spatial, x.dtype)
    shape = _out_shape(x.shape, spatial, oh, ow)
    buf, result = _target(out, shape, spatial, x.dtype, op, x)
    idx = empty(buf.shape, np.int64) if return_indices else None
    kernel_for(x.dtype, _core.max_pool2d_f32, _core.max_pool2d_f64)(
        x3, buf, idx, k, s, p, d, bool(ceil_mode)
    )
    result = _finish(buf, result)
    if return_indices:
        return result, idx.reshape(shape)
    return result


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, out=None):
    """2-D max pooling. x: (N, C, H, W) or (C, H, W), float32/float64.

    Returns y: (N, C, OH, OW) in x's dtype, and with ``return_indices`` also the int64
    argmax indices (flat ``h * W + w`` per plane) of the same shape. ``out`` (optional)
    receives y (reusing a buffer saves the page faults of a fresh large array).
    """
    return _max_pool("max_pool2d", x, 2, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices, out)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling. x: (N, C, L) or (C, L); returns y (N, C, OL) [, int64 indices]."""
    return _max_pool("max_pool1d", x, 1, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def _max_backward(op, dy, indices, input_shape, spatial, out=None):
    dy = _grad(dy, op)
    shape = _input_shape(input_shape, spatial, op)
    indices = index_array(indices, "indices", op)
    if indices.shape != dy.shape:
        raise ValueError(
            f"{op}: 'indices' has shape {indices.shape} but 'dy' has shape {dy.shape}"
        )
    if dy.ndim != len(shape) or dy.shape[:-spatial] != shape[:-spatial]:
        raise ValueError(
            f"{op}: 'dy' has shape {dy.shape}, which does not match 'input_shape' {shape}"
        )
    dx, result = _target(out, shape, spatial, dy.dtype, op, dy, indices)
    dy3 = as_planes(dy, spatial, dy.dtype)
    ix3 = np.ascontiguousarray(indices, dtype=np.int64).reshape(dy3.shape)
    kernel_for(dy.dtype, _core.max_pool_backward_f32, _core.max_pool_backward_f64)(op, dy3, ix3, dx)
    return _finish(dx, result)


def max_pool2d_backward(dy, indices, input_shape, *, out=None):
    """Gradient of :func:`max_pool2d`: routes each ``dy`` element to its argmax.

    dy, indices: (N, C, OH, OW) (indices from ``return_indices=True``); input_shape:
    the shape of x. Returns dx of shape ``input_shape`` in dy's dtype, written to
    ``out`` when given (reusing a buffer saves the page faults of a fresh large array).
    """
    return _max_backward("max_pool2d_backward", dy, indices, input_shape, 2, out)


def max_pool1d_backward(dy, indices, input_shape):
    """Gradient of :func:`max_pool1d` (dy, indices: (N, C, OL)); returns dx of ``input_shape``."""
    return _max_backward("max_pool1d_backward", dy, indices, input_shape, 1)


# --------------------------------------------------------------------------- average pooling

def _avg_args(op, spatial, kernel_size, stride, padding, divisor_override):
    k, s, p, _ = _window(op, spatial, kernel_size, stride, padding)
    if divisor_override is not None:
        if isinstance(divisor_override, (bool, float, np.floating)):
            raise TypeError(f"{op}: 'divisor_override' must be an int, got {divisor_override!r}")
        divisor_override = int(divisor_override)
        if divisor_override == 0:
            raise ValueError(f"{op}: 'divisor_override' must not be zero")
    return k, s, p, divisor_override


def _avg_pool(op, x, spatial, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, out=None):
    x = float_input(x, "x", op, spatial)
    k, s, p, div = _avg_args(op, spatial, kernel_size, stride, padding, divisor_override)
    oh, ow = _out_hw(op, x.shape, spatial, k, s, p, (1, 1), ceil_mode)
    x3 = as_planes(x, spatial, x.dtype)
    buf, result = _target(out, _out_shape(x.shape, spatial, oh, ow), spatial, x.dtype, op, x)
    kernel_for(x.dtype, _core.avg_pool2d_f32, _core.avg_pool2d_f64)(
        x3, buf, k, s, p, bool(ceil_mode), bool(count_include_pad), div
    )
    return _finish(buf, result)


def _avg_backward(op, dy, input_shape, spatial, kernel_size, stride, padding, ceil_mode,
                  count_include_pad, divisor_override, out=None):
    dy = _grad(dy, op)
    shape = _input_shape(input_shape, spatial, op)
    k, s, p, div = _avg_args(op, spatial, kernel_size, stride, padding, divisor_override)
    oh, ow = _out_hw(op, shape, spatial, k, s, p, (1, 1), ceil_mode)
    _check_dy(dy, _out_shape(shape, spatial, oh, ow), op)
    dx, result = _target(out, shape, spatial, dy.dtype, op, dy)
    kernel_for(dy.dtype, _core.avg_pool2d_backward_f32, _core.avg_pool2d_backward_f64)(
        as_planes(dy, spatial, dy.dtype), dx, k, s, p, bool(ceil_mode), bool(count_include_pad), div
    )
    return _finish(dx, result)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """2-D average pooling. x: (N, C, H, W) or (C, H, W), float32/float64.

    The divisor is the window area clipped to the padded input when
    ``count_include_pad`` (default), else the number of in-bounds elements;
    ``divisor_override`` (a non-zero int) replaces both. Returns (N, C, OH, OW), written
    to ``out`` when given.
    """
    return _avg_pool("avg_pool2d", x, 2, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, out)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, out=None):
    """Gradient of :func:`avg_pool2d` (same parameters); dy: (N, C, OH, OW) -> dx of
    ``input_shape``, written to ``out`` when given."""
    return _avg_backward("avg_pool2d_backward", dy, input_shape, 2, kernel_size, stride, padding,
                         ceil_mode, count_include_pad, divisor_override, out)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-D average pooling. x: (N, C, L) or (C, L); returns (N, C, OL)."""
    return _avg_pool("avg_pool1d", x, 1, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool1d_backward(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool1d`; dy: (N, C, OL) -> dx of ``input_shape``."""
    return _avg_backward("avg_pool1d_backward", dy, input_shape, 1, kernel_size, stride, padding,
                         ceil_mode, count_include_pad, None)


# --------------------------------------------------------------------------- adaptive pooling

def _adaptive_size(op, output_size, shape, spatial):
    if isinstance(output_size, (tuple, list)):
        items = list(output_size)
    else:
        items = [output_size] * spatial
    if len(items) != spatial:
        raise ValueError(
            f"{op}: 'output_size' must be an int or a sequence of {spatial}, got {output_size!r}"
        )
    full = []
    for v, n in zip(items, shape[-spatial:]):
        full.append(n if v is None else v)
    return int_tuple(tuple(full), spatial, "output_size", op, 0)


def _adaptive(op, x, spatial, output_size, kind, return_indices=False):
    x = float_input(x, "x", op, spatial)
    size = _adaptive_size(op, output_size, x.shape, spatial)
    oh, ow = (1, size[0]) if spatial == 1 else size
    x3 = as_planes(x, spatial, x.dtype)
    out = np.empty((x3.shape[0], oh, ow), x.dtype)
    shape = _out_shape(x.shape, spatial, oh, ow)
    if kind == "avg":
        kernel_for(x.dtype, _core.adaptive_avg_pool2d_f32, _core.adaptive_avg_pool2d_f64)(x3, out)
        return out.reshape(shape)
    idx = np.empty(out.shape, np.int64) if return_indices else None
    kernel_for(x.dtype, _core.adaptive_max_pool2d_f32, _core.adaptive_max_pool2d_f64)(x3, out, idx)
    if return_indices:
        return out.reshape(shape), idx.reshape(shape)
    return out.reshape(shape)


def _adaptive_avg_backward(op, dy, input_shape, spatial):
    dy = _grad(dy, op)
    shape = _input_shape(input_shape, spatial, op)
    if dy.ndim != len(shape) or dy.shape[:-spatial] != shape[:-spatial]:
        raise ValueError(
            f"{op}: 'dy' has shape {dy.shape}, which does not match 'input_shape' {shape}"
        )
    dx = empty(planes(shape, spatial), dy.dtype)
    kernel_for(dy.dtype, _core.adaptive_avg_pool2d_backward_f32,
               _core.adaptive_avg_pool2d_backward_f64)(as_planes(dy, spatial, dy.dtype), dx)
    return dx.reshape(shape)


def adaptive_avg_pool2d(x, output_size):
    """Adaptive 2-D average pooling to ``output_size`` (int or (OH, OW), None keeps that
    input size). Output ``i`` of an axis of length n averages ``[floor(i*n/out),
    ceil((i+1)*n/out))``. x: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW)."""
    return _adaptive("adaptive_avg_pool2d", x, 2, output_size, "avg")


def adaptive_avg_pool2d_backward(dy, input_shape):
    """Gradient of :func:`adaptive_avg_pool2d` (output size read from dy)."""
    return _adaptive_avg_backward("adaptive_avg_pool2d_backward", dy, input_shape, 2)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Adaptive 2-D max pooling (windows as in :func:`adaptive_avg_pool2d`); optionally
    returns int64 flat argmax indices for :func:`adaptive_max_pool2d_backward`."""
    return _adaptive("adaptive_max_pool2d", x, 2, output_size, "max", return_indices)


def adaptive_max_pool2d_backward(dy, indices, input_shape):
    """Gradient of :func:`adaptive_max_pool2d`."""
    return _max_backward("adaptive_max_pool2d_backward", dy, indices, input_shape, 2)


def adaptive_avg_pool1d(x, output_size):
    """Adaptive 1-D average pooling. x: (N, C, L) or (C, L) -> (N, C, output_size)."""
    return _adaptive("adaptive_avg_pool1d", x, 1, output_size, "avg")


def adaptive_avg_pool1d_backward(dy, input_shape):
    """Gradient of :func:`adaptive_avg_pool1d`."""
    return _adaptive_avg_backward("adaptive_avg_pool1d_backward", dy, input_shape, 1)


def adaptive_max_pool1d(x, output_size, return_indices=False):
    """Adaptive 1-D max pooling; optionally returns int64 argmax indices."""
    return _adaptive("adaptive_max_pool1d", x, 1, output_size, "max", return_indices)


def adaptive_max_pool1d_backward(dy, indices, input_shape):
    """Gradient of :func:`adaptive_max_pool1d`."""
    return _max_backward("adaptive_max_pool1d_backward", dy, indices, input_shape, 1)


def global_avg_pool2d(x):
    """Mean over H and W, keeping them as size-1 dims: (N, C, H, W) -> (N, C, 1, 1)."""
    return _adaptive("global_avg_pool2d", x, 2, 1, "avg")


def global_avg_pool2d_backward(dy, input_shape):
    """Gradient of :func:`global_avg_pool2d`: dy (N, C, 1, 1) spread evenly over H x W."""
    return _adaptive_avg_backward("global_avg_pool2d_backward", dy, input_shape, 2)


def global_max_pool2d(x, return_indices=False):
    """Max over H and W, keeping them as size-1 dims: (N, C, H, W) -> (N, C, 1, 1)."""
    return _adaptive("global_max_pool2d", x, 2, 1, "max", return_indices)


def global_max_pool2d_backward(dy, indices, input_shape):
    """Gradient of :func:`global_max_pool2d`."""
    return _max_backward("global_max_pool2d_backward", dy, indices, input_shape, 2)


# --------------------------------------------------------------------------- unpooling

def _unpool(op, x, indices, spatial, kernel_size, stride, padding, output_size):
    x = float_input(x, "x", op, spatial)
    indices = index_array(indices, "indices", op)
    if indices.shape != x.shape:
        raise ValueError(f"{op}: 'indices' has shape {indices.shape} but 'x' has shape {x.shape}")
    k, s, p, _ = _window(op, spatial, kernel_size, stride, padding)
    k, s, p = k[2 - spatial:], s[2 - spatial:], p[2 - spatial:]
    default = tuple((n - 1) * ss - 2 * pp + kk for n, ss, pp, kk in zip(x.shape[-spatial:], s, p, k))
    if output_size is None:
        size = default
    else:
        size = shape_tuple(output_size, "output_size", op)
        if len(size) == x.ndim:
            size = size[-spatial:]
        if len(size) != spatial:
            raise ValueError(
                f"{op}: 'output_size' must have {spatial} (or {x.ndim}) elements, got {output_size!r}"
            )
        for n, dflt, ss in zip(size, default, s):
            if not (dflt - ss < n < dflt + ss):
                raise ValueError(
                    f"{op}: 'output_size' {tuple(output_size)} must be between "
                    f"{tuple(d - t + 1 for d, t in zip(default, s))} and "
                    f"{tuple(d + t - 1 for d, t in zip(default, s))}"
                )
    if any(n < 1 for n in size):
        raise ValueError(f"{op}: the output size {size} is empty; check 'kernel_size' and 'stride'")
    oh, ow = (1, size[0]) if spatial == 1 else size
    x3 = as_planes(x, spatial, x.dtype)
    ix3 = np.ascontiguousarray(indices, dtype=np.int64).reshape(x3.shape)
    out = empty((x3.shape[0], oh, ow), x.dtype)
    kernel_for(x.dtype, _core.max_unpool2d_f32, _core.max_unpool2d_f64)(x3, ix3, out)
    return out.reshape(_out_shape(x.shape, spatial, oh, ow))


def _unpool_backward(op, dy, indices, spatial):
    dy = _grad(dy, op)
    check_rank(dy.shape, spatial, "dy", op)
    indices = index_array(indices, "indices", op)
    if indices.ndim != dy.ndim or indices.shape[:-spatial] != dy.shape[:-spatial]:
        raise ValueError(
            f"{op}: 'indices' has shape {indices.shape}, which does not match 'dy' {dy.shape}"
        )
    check_rank(indices.shape, spatial, "indices", op)
    dy3 = as_planes(dy, spatial, dy.dtype)
    ix3 = np.ascontiguousarray(indices, dtype=np.int64).reshape(planes(indices.shape, spatial))
    dx = empty(ix3.shape, dy.dtype)
    kernel_for(dy.dtype, _core.max_unpool2d_backward_f32, _core.max_unpool2d_backward_f64)(dy3, ix3, dx)
    return dx.reshape(indices.shape)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of :func:`max_pool2d`: places each value of x at its saved flat index in
    a zero (N, C, OH, OW) array. Default size ``(H - 1) * stride - 2 * padding +
    kernel_size``; ``output_size`` ((OH, OW) or a full shape) may differ from it by
    less than ``stride``. x, indices: (N, C, H, W) or (C, H, W)."""
    return _unpool("max_unpool2d", x, indices, 2, kernel_size, stride, padding, output_size)


def max_unpool2d_backward(dy, indices):
    """Gradient of :func:`max_unpool2d`: ``dx = dy`` gathered at ``indices`` (shape of indices)."""
    return _unpool_backward("max_unpool2d_backward", dy, indices, 2)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of :func:`max_pool1d`. x, indices: (N, C, L) or (C, L)."""
    return _unpool("max_unpool1d", x, indices, 1, kernel_size, stride, padding, output_size)


def max_unpool1d_backward(dy, indices):
    """Gradient of :func:`max_unpool1d`."""
    return _unpool_backward("max_unpool1d_backward", dy, indices, 1)
