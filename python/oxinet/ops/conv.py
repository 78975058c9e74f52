"""Convolutions on NCHW NumPy arrays with ``torch.nn.functional`` semantics.

``conv1d`` / ``conv2d`` / ``conv3d`` and ``conv_transpose1d/2d/3d`` with their
``*_backward``, and ``im2col`` / ``col2im`` (PyTorch's ``unfold`` / ``fold``).

Shapes (2-D; 1-D drops H, 3-D adds D before H):
    input  x: (N, C_in, H, W), or (C_in, H, W) unbatched
    weight w: (C_out, C_in / groups, kh, kw)          for conv2d
              (C_in, C_out / groups, kh, kw)          for conv_transpose2d
    bias   b: (C_out,)
dtypes: float32 (default) and float64; mixing them gives float64; other dtypes raise
``TypeError``. Bad shapes and parameters raise ``ValueError`` naming the argument.

All of them run on the Rust kernels (``oxinet._core``): im2col tiles fed to the GEMM,
a plain GEMM for 1x1 convolutions, and a direct kernel for depthwise ones.
"""

from __future__ import annotations

import operator

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, kernel_for, result_dtype

__all__ = [
    "fold",
    "unfold",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv1d_backward",
    "conv2d_backward",
    "conv3d_backward",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose1d_backward",
    "conv_transpose2d_backward",
    "conv_transpose3d_backward",
    "im2col",
    "col2im",
]

_NEEDS = ("input", "weight", "bias")


# --------------------------------------------------------------------------- helpers


def _ints(value, nd: int, name: str, op: str) -> tuple:
    """An int or a sequence of ``nd`` ints as a tuple of ``nd`` Python ints."""
    bad = TypeError(f"{op}: '{name}' must be an int or a tuple of {nd} ints, got {value!r}")
    if isinstance(value, (bool, np.bool_, str)):
        raise bad
    try:
        return (operator.index(value),) * nd
    except TypeError:
        pass
    try:
        seq = tuple(value)
    except TypeError:
        raise bad from None
    if len(seq) != nd:
        raise ValueError(f"{op}: '{name}' must have {nd} values, got {value!r}")
    out = []
    for v in seq:
        if isinstance(v, (bool, np.bool_)):
            raise bad
        try:
            out.append(operator.index(v))
        except TypeError:
            raise bad from None
    return tuple(out)


def _positive(values: tuple, name: str, op: str) -> tuple:
    if any(v < 1 for v in values):
        raise ValueError(f"{op}: '{name}' must be >= 1, got {values if len(values) > 1 else values[0]}")
    return values


def _groups(groups, op: str) -> int:
    if isinstance(groups, (bool, np.bool_)):
        raise TypeError(f"{op}: 'groups' must be an int, got {groups!r}")
    try:
        g = operator.index(groups)
    except TypeError:
        raise TypeError(f"{op}: 'groups' must be an int, got {groups!r}") from None
    if g < 1:
        raise ValueError(f"{op}: 'groups' must be >= 1, got {g}")
    return g


def _pad3(t: tuple, fill: int) -> list:
    """A 1-, 2- or 3-axis parameter as the 3-axis (D, H, W) list the kernels take."""
    return [fill] * (3 - len(t)) + list(t)


def _to5(a: np.ndarray, nd: int) -> np.ndarray:
    """(N, C, *spatial) as (N, C, D, H, W) without copying."""
    return a.reshape(a.shape[:2] + (1,) * (3 - nd) + a.shape[2:])


def _from5(a: np.ndarray, nd: int) -> np.ndarray:
    return a.reshape(a.shape[:2] + a.shape[5 - nd :])


def _padding(padding, nd: int, kernel: tuple, stride: tuple, dilation: tuple, op: str):
    """Low and high padding per axis; 'same' puts the odd extra element at the end."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided convolutions "
                    f"(stride={stride if nd > 1 else stride[0]})"
                )
            total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
            lo = tuple(t // 2 for t in total)
            return lo, tuple(t - l for t, l in zip(total, lo))
        raise ValueError(f"{op}: 'padding' must be 'valid', 'same', an int or a tuple of {nd} ints, got {padding!r}")
    pad = _ints(padding, nd, "padding", op)
    if any(p < 0 for p in pad):
        raise ValueError(f"{op}: 'padding' must be non-negative, got {padding!r}")
    return pad, pad


def _batch(x: np.ndarray, nd: int, name: str, op: str, what: str) -> tuple:
    """Accept (N, C, *spatial) or unbatched (C, *spatial); return the batched array."""
    if x.ndim == nd + 2:
        return x, False
    if x.ndim == nd + 1:
        return x[np.newaxis], True
    raise ValueError(
        f"{op}: '{name}' must be {nd + 2}-D {what} or {nd + 1}-D unbatched, got shape {x.shape}"
    )


_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


class _Conv:
    """Validated arguments of one convolution (forward geometry)."""

    def __init__(self, op, nd, x_shape, w_shape, bias_shape, stride, padding, dilation, groups, transposed=False,
                 output_padding=0):
        self.op, self.nd = op, nd
        self.stride = _positive(_ints(stride, nd, "stride", op), "stride", op)
        self.dilation = _positive(_ints(dilation, nd, "dilation", op), "dilation", op)
        self.groups = g = _groups(groups, op)
        if len(w_shape) != nd + 2:
            raise ValueError(
                f"{op}: 'weight' must be {nd + 2}-D "
                f"{'(C_in, C_out/groups, k...)' if transposed else '(C_out, C_in/groups, k...)'}, got shape {w_shape}"
            )
        n, c_in = x_shape[:2]
        self.kernel = tuple(w_shape[2:])
        if any(k < 1 for k in self.kernel):
            raise ValueError(f"{op}: 'weight' has an empty kernel, shape {w_shape}")
        if transposed:
            if isinstance(padding, str):
                raise ValueError(f"{op}: 'padding' must be an int or a tuple of {nd} ints, got {padding!r}")
        lo, hi = _padding(padding, nd, self.kernel, self.stride, self.dilation, op)
        self.pad_lo, self.pad_hi = lo, hi
        if c_in % g:
            raise ValueError(f"{op}: 'groups'={g} does not divide the input channels {c_in} (input shape {x_shape})")
        if transposed:
            if w_shape[0] != c_in:
                raise ValueError(
                    f"{op}: 'weight' has shape {w_shape} but input has {c_in} channels (shape {x_shape}); "
                    f"expected weight.shape[0] == {c_in}"
                )
            c_out = w_shape[1] * g
            op_ = _ints(output_padding, nd, "output_padding", op)
            if any(o < 0 for o in op_):
                raise ValueError(f"{op}: 'output_padding' must be non-negative, got {output_padding!r}")
            if any(o >= max(s, d) for o, s, d in zip(op_, self.stride, self.dilation)):
                raise ValueError(
                    f"{op}: 'output_padding' {op_} must be smaller than either stride {self.stride} "
                    f"or dilation {self.dilation} on each axis"
                )
            self.output_padding = op_
            out = tuple(
                (i - 1) * s - l - h + d * (k - 1) + o + 1
                for i, s, l, h, d, k, o in zip(x_shape[2:], self.stride, lo, hi, self.dilation, self.kernel, op_)
            )
            if any(o < 1 for o in out):
                raise ValueError(
                    f"{op}: output size {out} is too small (input {x_shape}, kernel {self.kernel}, "
                    f"stride {self.stride}, padding {lo}); check 'padding'"
                )
        else:
            c_out = w_shape[0]
            if c_out % g:
                raise ValueError(
                    f"{op}: 'groups'={g} does not divide the output channels {c_out} ('weight' shape {w_shape})"
                )
            if w_shape[1] * g != c_in:
                if g == 1:
                    msg = f"{op}: 'weight' has shape {w_shape} but input has {c_in} channels (shape {x_shape})"
                else:
                    msg = (
                        f"{op}: 'weight' has shape {w_shape}, expected {c_in // g} input channels per group "
                        f"for an input with {c_in} channels (shape {x_shape}) and groups={g}"
                    )
                raise ValueError(msg)
            out = []
            for a, (i, k, s, d, l, h) in enumerate(zip(x_shape[2:], self.kernel, self.stride, self.dilation, lo, hi)):
                span = d * (k - 1) + 1
                if i + l + h < span:
                    raise ValueError(
                        f"{op}: kernel size {self.kernel} (dilation {self.dilation}) is larger than the padded "
                        f"input: input shape {x_shape}, padding {tuple(lo)}/{tuple(hi)} gives spatial size "
                        f"{tuple(ii + ll + hh for ii, ll, hh in zip(x_shape[2:], lo, hi))} ('weight' shape {w_shape})"
                    )
                out.append((i + l + h - span) // s + 1)
            out = tuple(out)
        self.c_in, self.c_out, self.n = c_in, c_out, n
        self.out_shape = (n, c_out) + out
        if bias_shape is not None and tuple(bias_shape) != (c_out,):
            raise ValueError(f"{op}: 'bias' has shape {tuple(bias_shape)}, expected ({c_out},) for 'weight' shape {w_shape}")

    def kparams(self):
        """stride, dilation, pad_lo, pad_hi, groups as the 3-axis kernel arguments."""
        return (
            _pad3(self.stride, 1),
            _pad3(self.dilation, 1),
            _pad3(self.pad_lo, 0),
            _pad3(self.pad_hi, 0),
            self.groups,
        )


def _prep(op, nd, x, w, b):
    x = as_float_array(x, "input", op)
    w = as_float_array(w, "weight", op)
    b = None if b is None else as_float_array(b, "bias", op)
    dtype = result_dtype(*(a for a in (x, w, b) if a is not None))
    return x, w, b, dtype


def _c(a: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def _needs(needs, op: str) -> set:
    if isinstance(needs, str):
        needs = (needs,)
    try:
        s = set(needs)
    except TypeError:
        raise TypeError(f"{op}: 'needs' must be a tuple of names from {_NEEDS}, got {needs!r}") from None
    bad = s - set(_NEEDS)
    if bad:
        raise ValueError(f"{op}: 'needs' may only contain {_NEEDS}, got {sorted(bad)}")
    return s


def _check_dy(dy: np.ndarray, expected: tuple, op: str) -> None:
    if dy.shape != tuple(expected):
        raise ValueError(f"{op}: 'dy' has shape {dy.shape}, expected the output shape {tuple(expected)}")


def _bias_grad(dy5: np.ndarray) -> np.ndarray:
    n, c = dy5.shape[:2]
    dy3 = dy5.reshape(n, c, int(np.prod(dy5.shape[2:])))
    return kernel_for(dy3.dtype, _core.conv_bias_grad_f32, _core.conv_bias_grad_f64)(dy3)


# --------------------------------------------------------------------------- convolution


def _conv_nd(nd, x, w, b, stride, padding, dilation, groups):
    op = f"conv{nd}d"
    x, w, b, dtype = _prep(op, nd, x, w, b)
    x, unbatched = _batch(x, nd, "input", op, _LAYOUT[nd])
    cv = _Conv(op, nd, x.shape, w.shape, None if b is None else b.shape, stride, padding, dilation, groups)
    f = kernel_for(dtype, _core.conv_forward_f32, _core.conv_forward_f64)
    bias = None if b is None else _c(b, dtype)
    y = _from5(f(_to5(_c(x, dtype), nd), _to5(_c(w, dtype), nd), bias, *cv.kparams()), nd)
    return y[0] if unbatched else y


def _conv_nd_backward(nd, dy, x, w, stride, padding, dilation, groups, needs):
    op = f"conv{nd}d_backward"
    want = _needs(needs, op)
    dy = as_float_array(dy, "dy", op)
    x, w, _, dtype = _prep(op, nd, x, w, None)
    dtype = result_dtype(dy, x, w)
    x, unbatched = _batch(x, nd, "input", op, _LAYOUT[nd])
    if unbatched:
        dy = dy[np.newaxis]
    cv = _Conv(op, nd, x.shape, w.shape, None, stride, padding, dilation, groups)
    _check_dy(dy[0] if unbatched else dy, cv.out_shape[1:] if unbatched else cv.out_shape, op)
    dy5 = _to5(_c(dy, dtype), nd)
    kp = cv.kparams()
    dx = dw = db = None
    if "input" in want:
        f = kernel_for(dtype, _core.conv_input_grad_f32, _core.conv_input_grad_f64)
        dx = _from5(f(dy5, _to5(_c(w, dtype), nd), list(_to5(x, nd).shape), *kp), nd)
        if unbatched:
            dx = dx[0]
    if "weight" in want:
        f = kernel_for(dtype, _core.conv_weight_grad_f32, _core.conv_weight_grad_f64)
        dw = f(dy5, _to5(_c(x, dtype), nd), _pad3(cv.kernel, 1), *kp).reshape(w.shape)
    if "bias" in want:
        db = _bias_grad(dy5)
    return dx, dw, db


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation), ``torch.nn.functional.conv1d``.

    x: (N, C_in, L) or (C_in, L); w: (C_out, C_in/groups, k); b: (C_out,) or None.
    padding: int, (p,), 'valid' or 'same'. Returns (N, C_out, L_out),
    L_out = floor((L + 2p - dilation*(k-1) - 1) / stride) + 1.
    """
    return _conv_nd(1, x, w, b, stride, padding, dilation, groups)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, no kernel flip), ``torch.nn.functional.conv2d``.

    x: (N, C_in, H, W) or unbatched (C_in, H, W); w: (C_out, C_in/groups, kh, kw);
    b: (C_out,) or None. stride, dilation: int or pair (>= 1). padding: int, pair,
    'valid' (no padding) or 'same' (stride 1 only; output size = input size; for even
    kernels the extra row/column of padding goes at the bottom/right, as in PyTorch).
    groups must divide C_in and C_out. Returns (N, C_out, H_out, W_out) with
    H_out = floor((H + pad_top + pad_bottom - dilation*(kh-1) - 1) / stride) + 1.
    """
    return _conv_nd(2, x, w, b, stride, padding, dilation, groups)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution, ``torch.nn.functional.conv3d``.

    x: (N, C_in, D, H, W) or (C_in, D, H, W); w: (C_out, C_in/groups, kd, kh, kw);
    b: (C_out,) or None. Returns (N, C_out, D_out, H_out, W_out).
    """
    return _conv_nd(3, x, w, b, stride, padding, dilation, groups)


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, needs=_NEEDS):
    """Gradients of ``conv1d``: returns (dx, dw, db), each None unless named in ``needs``.

    dy: (N, C_out, L_out), the gradient of the loss w.r.t. the output; x and w as given
    to the forward. dx: x's shape, dw: w's shape, db: (C_out,).
    """
    return _conv_nd_backward(1, dy, x, w, stride, padding, dilation, groups, needs)


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, needs=_NEEDS):
    """Gradients of ``conv2d``: returns (dx, dw, db), each None unless named in ``needs``
    (a subset of ("input", "weight", "bias")); only the requested ones are computed.

    dy: (N, C_out, H_out, W_out), the gradient of the loss w.r.t. conv2d's output;
    x, w and the parameters as given to the forward. dx has x's shape, dw w's shape,
    db is (C_out,). dx is a GEMM plus col2im, dw a GEMM over im2col tiles.
    """
    return _conv_nd_backward(2, dy, x, w, stride, padding, dilation, groups, needs)


def conv3d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, needs=_NEEDS):
    """Gradients of ``conv3d``: returns (dx, dw, db), each None unless named in ``needs``."""
    return _conv_nd_backward(3, dy, x, w, stride, padding, dilation, groups, needs)


# --------------------------------------------------------------------------- transposed


def _conv_transpose_nd(nd, x, w, b, stride, padding, output_padding, groups, dilation):
    op = f"conv_transpose{nd}d"
    x, w, b, dtype = _prep(op, nd, x, w, b)
    x, unbatched = _batch(x, nd, "input", op, _LAYOUT[nd])
    cv = _Conv(op, nd, x.shape, w.shape, None if b is None else b.shape, stride, padding, dilation, groups,
               transposed=True, output_padding=output_padding)
    f = kernel_for(dtype, _core.conv_input_grad_f32, _core.conv_input_grad_f64)
    out5 = list(cv.out_shape[:2]) + [1] * (3 - nd) + list(cv.out_shape[2:])
    y = f(_to5(_c(x, dtype), nd), _to5(_c(w, dtype), nd), out5, *cv.kparams())
    y = _from5(y, nd)
    if b is not None:
        y += b.astype(dtype, copy=False).reshape((1, -1) + (1,) * nd)
    return y[0] if unbatched else y


def _conv_transpose_nd_backward(nd, dy, x, w, stride, padding, output_padding, groups, dilation, needs):
    op = f"conv_transpose{nd}d_backward"
    want = _needs(needs, op)
    dy = as_float_array(dy, "dy", op)
    x, w, _, dtype = _prep(op, nd, x, w, None)
    dtype = result_dtype(dy, x, w)
    x, unbatched = _batch(x, nd, "input", op, _LAYOUT[nd])
    if unbatched:
        dy = dy[np.newaxis]
    cv = _Conv(op, nd, x.shape, w.shape, None, stride, padding, dilation, groups, transposed=True,
               output_padding=output_padding)
    _check_dy(dy[0] if unbatched else dy, cv.out_shape[1:] if unbatched else cv.out_shape, op)
    dy5 = _to5(_c(dy, dtype), nd)
    kp = cv.kparams()
    dx = dw = db = None
    if "input" in want:
        f = kernel_for(dtype, _core.conv_forward_f32, _core.conv_forward_f64)
        full = f(dy5, _to5(_c(w, dtype), nd), None, *kp)
        sl = (slice(None), slice(None)) + tuple(slice(0, s) for s in _to5(x, nd).shape[2:])
        dx = _from5(np.ascontiguousarray(full[sl]), nd)
        if unbatched:
            dx = dx[0]
    if "weight" in want:
        f = kernel_for(dtype, _core.conv_weight_grad_f32, _core.conv_weight_grad_f64)
        dw = f(_to5(_c(x, dtype), nd), dy5, _pad3(cv.kernel, 1), *kp).reshape(w.shape)
    if "bias" in want:
        db = _bias_grad(dy5)
    return dx, dw, db


def conv_transpose1d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution, ``torch.nn.functional.conv_transpose1d``.

    x: (N, C_in, L); w: (C_in, C_out/groups, k); returns (N, C_out, L_out) with
    L_out = (L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1.
    """
    return _conv_transpose_nd(1, x, w, b, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution ("deconvolution"), ``torch.nn.functional.conv_transpose2d``.

    x: (N, C_in, H, W) or (C_in, H, W); w: (C_in, C_out/groups, kh, kw) (PyTorch's
    layout); b: (C_out,) or None. Each input value scales the kernel, which is added into
    the output at stride ``stride`` (the course's procedure); then ``padding`` rows and
    columns are cropped from each border, so
    H_out = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1.
    ``output_padding`` (< stride or < dilation) adds rows/columns at the bottom/right
    only; the course's 2x2 -> 4x4 example (k=3, s=2, p=1) needs output_padding=1.
    It is the input gradient of ``conv2d`` with the same parameters.
    """
    return _conv_transpose_nd(2, x, w, b, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-D transposed convolution, ``torch.nn.functional.conv_transpose3d``;
    w: (C_in, C_out/groups, kd, kh, kw)."""
    return _conv_transpose_nd(3, x, w, b, stride, padding, output_padding, groups, dilation)


def conv_transpose1d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                              needs=_NEEDS):
    """Gradients of ``conv_transpose1d``: (dx, dw, db), None where not in ``needs``."""
    return _conv_transpose_nd_backward(1, dy, x, w, stride, padding, output_padding, groups, dilation, needs)


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                              needs=_NEEDS):
    """Gradients of ``conv_transpose2d``: (dx, dw, db), None where not in ``needs``.

    dy: (N, C_out, H_out, W_out). dx is ``conv2d(dy, w, ...)`` (cropped to x's size),
    dw a GEMM over im2col tiles of dy, db the sum of dy over N, H, W.
    """
    return _conv_transpose_nd_backward(2, dy, x, w, stride, padding, output_padding, groups, dilation, needs)


def conv_transpose3d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                              needs=_NEEDS):
    """Gradients of ``conv_transpose3d``: (dx, dw, db), None where not in ``needs``."""
    return _conv_transpose_nd_backward(3, dy, x, w, stride, padding, output_padding, groups, dilation, needs)


# --------------------------------------------------------------------------- im2col / col2im


def _unfold_params(op, kernel_size, dilation, padding, stride):
    k = _positive(_ints(kernel_size, 2, "kernel_size", op), "kernel_size", op)
    d = _positive(_ints(dilation, 2, "dilation", op), "dilation", op)
    s = _positive(_ints(stride, 2, "stride", op), "stride", op)
    p = _ints(padding, 2, "padding", op)
    if any(v < 0 for v in p):
        raise ValueError(f"{op}: 'padding' must be non-negative, got {padding!r}")
    return k, d, p, s


def _blocks(op, size, k, d, p, s, shape_msg):
    out = []
    for i, kk, dd, pp, ss in zip(size, k, d, p, s):
        span = dd * (kk - 1) + 1
        if i + 2 * pp < span:
            raise ValueError(
                f"{op}: 'kernel_size' {k} (dilation {d}) is larger than the padded input "
                f"{tuple(ii + 2 * q for ii, q in zip(size, p))} ({shape_msg})"
            )
        out.append((i + 2 * pp - span) // ss + 1)
    return tuple(out)


def im2col(x, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks as columns, ``torch.nn.functional.unfold``.

    x: (N, C, H, W) or (C, H, W). Returns (N, C*kh*kw, L) (or (C*kh*kw, L)) where row
    c*kh*kw + i*kw + j holds x[n, c, oh*s + i*d - p, ow*s + j*d - p] (0 outside) and L
    counts the output positions (oh, ow) row-major. ``conv2d(x, w)`` equals
    ``w.reshape(C_out, -1) @ im2col(x, ...)`` reshaped. Its adjoint is ``col2im``.
    """
    op = "im2col"
    x = as_float_array(x, "input", op)
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: 'input' must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[np.newaxis]
    k, d, p, s = _unfold_params(op, kernel_size, dilation, padding, stride)
    _blocks(op, x.shape[2:], k, d, p, s, f"input shape {x.shape}")
    f = kernel_for(x.dtype, _core.im2col_f32, _core.im2col_f64)
    cols = f(_to5(_c(x, x.dtype), 2), [1, *k], [1, *s], [1, *d], [0, *p], [0, *p])
    return cols[0] if unbatched else cols


def col2im(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum columns back into an image, ``torch.nn.functional.fold`` (adjoint of ``im2col``).

    cols: (N, C*kh*kw, L) or (C*kh*kw, L); output_size: (H, W). Returns (N, C, H, W)
    (or (C, H, W)); overlapping blocks add up. L must equal the number of blocks
    im2col produces for (H, W) with the same parameters.
    """
    op = "col2im"
    cols = as_float_array(cols, "input", op)
    if cols.ndim not in (2, 3):
        raise ValueError(f"{op}: 'input' must be 3-D (N, C*kh*kw, L) or 2-D (C*kh*kw, L), got shape {cols.shape}")
    unbatched = cols.ndim == 2
    if unbatched:
        cols = cols[np.newaxis]
    size = _positive(_ints(output_size, 2, "output_size", op), "output_size", op)
    k, d, p, s = _unfold_params(op, kernel_size, dilation, padding, stride)
    kk = k[0] * k[1]
    if cols.shape[1] % kk:
        raise ValueError(
            f"{op}: 'input' has shape {cols.shape}: dimension 1 must be divisible by kh*kw = {kk} "
            f"(kernel_size {k})"
        )
    blocks = _blocks(op, size, k, d, p, s, f"output_size {size}")
    if cols.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(
            f"{op}: 'input' has shape {cols.shape} with L = {cols.shape[2]} blocks, but output_size {size}, "
            f"kernel_size {k}, dilation {d}, padding {p}, stride {s} give {blocks[0]} x {blocks[1]} = "
            f"{blocks[0] * blocks[1]}"
        )
    f = kernel_for(cols.dtype, _core.col2im_f32, _core.col2im_f64)
    x = f(_c(cols, cols.dtype), cols.shape[1] // kk, [1, *size], [1, *k], [1, *s], [1, *d], [0, *p], [0, *p])
    x = _from5(x, 2)
    return x[0] if unbatched else x


unfold = im2col
fold = col2im
