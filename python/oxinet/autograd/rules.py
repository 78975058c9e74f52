"""Gradient rules of the Tensor operations: one graph node class (or backward function)
per operation, working on NumPy arrays. :mod:`oxinet.tensor` records them; the engine in
:mod:`oxinet.autograd.graph` calls their ``backward``. Matrix products use the Rust GEMM
(``ops.matmul``) above a small size and NumPy below it; activations use the Rust
activation kernels where those are faster.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet.autograd.graph import IndexGrad, Node
from oxinet.ops import activation as _act_ops
from oxinet.ops.linalg import matmul as _ox_matmul

_ndarray = np.ndarray


def _shape_of(v):
    return v.shape if type(v) is _ndarray else np.shape(v)



# NumPy reduces over a non-last axis with the kept trailing block as its inner loop, and
# over a short last axis row by row: both are slow when that run is short, where einsum's
# sum-of-products loop is 2-5x faster (float32, medians, NumPy sum vs einsum, us):
# (100,30,16) over 1: 55 vs 12; (3000,16) over 0: 52 vs 12; (100,30,128) over 2: 101 vs 29;
# (32,100,256) over (0,1): 110 vs 90; (64,32,56,56) over (0,2,3): 1166 vs 506; equal at
# (100,128) over 0; NumPy wins on long kept runs ((11,100,128) over 0: 13 vs 16). einsum adds
# in order where NumPy sums a long last axis pairwise, hence the 128 cap on that axis.
_EINSUM_MAX_INNER = 1024
_EINSUM_MAX_LAST = 128


def _sum_axes(g, axes, keepdims=False):
    """``g.sum(axis=axes, keepdims=keepdims)`` for a tuple of sorted non-negative axes, on
    einsum where NumPy's reduction is slow (see above)."""
    nd = g.ndim
    if axes and type(g) is _ndarray and g.dtype.char in "fd" and g.size:
        shape = g.shape
        if axes[-1] == nd - 1:
            fast = shape[-1] <= _EINSUM_MAX_LAST
        else:
            fast = math.prod(shape[axes[-1] + 1:]) < _EINSUM_MAX_INNER
        if fast:
            out = np.einsum(g, list(range(nd)), [i for i in range(nd) if i not in axes])
            if keepdims:
                out = np.reshape(out, tuple(1 if i in axes else n for i, n in enumerate(shape)))
            return out
    return g.sum(axis=axes, keepdims=keepdims)


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach ``shape``."""
    gs = g.shape
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and gs[i + lead] != 1)
    if axes:
        g = _sum_axes(g, axes)
    if g.shape != shape:
        g = np.reshape(g, shape)
    return g



class _AddB(Node):
    __slots__ = ("sa", "sb")

    def backward(self, g):
        a, b = self.inputs
        return (_unbroadcast(g, self.sa) if a is not None else None,
                _unbroadcast(g, self.sb) if b is not None else None)


class _SubB(Node):
    __slots__ = ("sa", "sb")

    def backward(self, g):
        a, b = self.inputs
        return (_unbroadcast(g, self.sa) if a is not None else None,
                _unbroadcast(-g, self.sb) if b is not None else None)


class _MulB(Node):
    __slots__ = ()

    def backward(self, g):
        a, b = self.inputs
        x, y = self.saved
        return (_unbroadcast(g * y, _shape_of(x)) if a is not None else None,
                _unbroadcast(g * x, _shape_of(y)) if b is not None else None)


class _DivB(Node):
    __slots__ = ()

    def backward(self, g):
        a, b = self.inputs
        x, y = self.saved
        ga = gb = None
        gy = g / y
        if a is not None:
            ga = _unbroadcast(gy, np.shape(x))
        if b is not None:
            gb = _unbroadcast(-gy * x / y, np.shape(y))
        return ga, gb


class _PowB(Node):
    """x ** y for tensors (either may be a constant)."""

    __slots__ = ()

    def backward(self, g):
        a, b = self.inputs
        x, y, out = self.saved
        ga = gb = None
        if a is not None:
            ga = _unbroadcast(g * y * np.power(x, y - 1), np.shape(x))
        if b is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                lx = np.where(x > 0, np.log(np.where(x > 0, x, 1)), np.where(x == 0, 0.0, np.nan))
            gb = _unbroadcast(g * out * lx, np.shape(y))
        return ga, gb


class _UnaryB(Node):
    """An elementwise op: ``fn(g, *saved)`` gives the input gradient."""

    __slots__ = ("fn",)

    def backward(self, g):
        s = self.saved
        return (self.fn(g, *s) if s is not None else self.fn(g),)

    def name(self):
        return self.fn.__name__


class _MatmulB(Node):
    __slots__ = ()

    def backward(self, g):
        ea, eb = self.inputs
        a, b = self.saved
        if a.ndim == 1 and b.ndim == 1:
            return (g * b if ea is not None else None, g * a if eb is not None else None)
        a2 = a[np.newaxis, :] if a.ndim == 1 else a
        b2 = b[:, np.newaxis] if b.ndim == 1 else b
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        ga = gb = None
        if ea is not None:
            ga = _unbroadcast(_mm(g, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if eb is not None:
            if a2.ndim > 2 and b2.ndim == 2:
                # fold the batch: (K, B*M) @ (B*M, N)
                k = a2.shape[-1]
                gb = _mm(a2.reshape(-1, k).T, g.reshape(-1, g.shape[-1]))
            else:
                gb = _unbroadcast(_mm(np.swapaxes(a2, -1, -2), g), b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


# Below about this many multiply-adds the fixed cost of a kernel call exceeds the product
# itself and NumPy's matmul is faster. Re-measured after ops.matmul's 2-D fast path
# (~2 us per call; medians of alternating calls, 2-core machine under load): float32
# 32^3 1.7 vs 2.0 us (NumPy), 40^3 2.4 vs 2.6, 16x64x64 / 8x128x64 2.4-2.7 vs 2.2-2.3
# (Rust), 64^3 6.2 vs 4.3, 128^3 57 vs 31; float64 already wins from 32^3 (3.2 vs 2.2).
# The crossover moved from ~96^3 (2^19) to ~40^3.
_SMALL_GEMM = 1 << 16

# A batch of small products (a batched right operand, so the Rust side loops over the
# batch) pays the gemm crate's dispatch per item: below this many multiply-adds per item
# NumPy's stacked matmul is faster, except for K = 1 (outer products), where NumPy takes a
# slow generic loop. Measured (float32, batch x (M, K, N), medians, Rust vs NumPy, us):
# 100x(1,30,128) 53 vs 27, 100x(1,128,30) 74 vs 33, 100x(10,16,10) 51 vs 17,
# 64x(16,64,16) 50 vs 33, 400x(4,8,4) 88 vs 32; 64x(32,32,32) 54 vs 58,
# 32x(64,64,64) 82 vs 183; K = 1: 100x(30,1,128) 61 vs 451.
_SMALL_BATCHED_ITEM = 1 << 15


def _mm(a, b):
    """Matrix product for the autograd rules: oxinet's Rust GEMM, except tiny products
    and batches of small ones (see ``_SMALL_BATCHED_ITEM``). Outer products (K = 1) always
    take the Rust GEMM: NumPy's matmul runs them in a slow generic loop ((3000,1)@(1,16):
    54 us vs 6; (100,30,1)@(1,16): 56 vs 10), and a single product per element gives the
    same bits on either side."""
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        if a.ndim > 1 and b.ndim > 1 and a.shape[-1] == 1 and a.dtype.char in "fd" and b.dtype.char in "fd":
            return _ox_matmul(a, b)
        if a.size * (b.shape[-1] if b.ndim > 1 else 1) >= _SMALL_GEMM:
            if b.ndim > 2 and a.ndim > 1:
                k = a.shape[-1]
                if a.shape[-2] * k * b.shape[-1] < _SMALL_BATCHED_ITEM:
                    return np.matmul(a, b)
            return _ox_matmul(a, b)
    return np.matmul(a, b)


def _expand_to(g, shape):
    out = np.empty(shape, g.dtype)
    out[...] = g
    return out


class _SumB(Node):
    __slots__ = ("shape", "dims", "keep")

    def backward(self, g):
        if self.dims is not None and not self.keep:
            g = np.expand_dims(g, self.dims)
        return (_expand_to(g, self.shape),)


class _MeanB(Node):
    __slots__ = ("shape", "dims", "keep", "count")

    def backward(self, g):
        if self.dims is not None and not self.keep:
            g = np.expand_dims(g, self.dims)
        return (_expand_to(g / self.count, self.shape),)


class _AmaxB(Node):
    """amax/amin: the gradient is shared evenly between tied extrema (as PyTorch does)."""

    __slots__ = ("dims", "keep")

    def backward(self, g):
        x, out = self.saved
        if self.dims is not None and not self.keep:
            g = np.expand_dims(g, self.dims)
            out = np.expand_dims(out, self.dims)
        mask = x == out
        count = mask.sum(axis=self.dims, keepdims=True)
        return (mask * (g / count),)


class _IndexReduceB(Node):
    """max/min along one dim returning indices: the gradient goes to the chosen index."""

    __slots__ = ("shape", "dim", "keep", "dtype")

    def backward(self, g):
        (idx,) = self.saved
        if not self.keep:
            g = np.expand_dims(g, self.dim)
            idx = np.expand_dims(idx, self.dim)
        gx = np.zeros(self.shape, self.dtype)
        np.put_along_axis(gx, idx, g, axis=self.dim)
        return (gx,)


class _VarB(Node):
    __slots__ = ("dims", "keep", "denom", "std")

    def backward(self, g):
        x, mean, out = self.saved
        if self.dims is not None and not self.keep:
            g = np.expand_dims(g, self.dims)
            out = np.expand_dims(out, self.dims)
        centered = x - mean
        if self.std:
            return (g * centered / (self.denom * out),)
        return (g * (2.0 / self.denom) * centered,)


class _Norm2B(Node):
    """Euclidean norm: d||x||/dx = x / ||x||, taken as 0 where the norm is 0 (as PyTorch)."""

    __slots__ = ("dims", "keep")

    def backward(self, g):
        x, out = self.saved
        if self.dims is not None and not self.keep:
            g = np.expand_dims(g, self.dims)
            out = np.expand_dims(out, self.dims)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(out > 0, g / np.where(out > 0, out, 1), 0)
        return (x * scale,)


class _LogsumexpB(Node):
    __slots__ = ("dims", "keep")

    def backward(self, g):
        x, out = self.saved
        if self.dims is not None and not self.keep:
            g = np.expand_dims(g, self.dims)
            out = np.expand_dims(out, self.dims)
        return (g * np.exp(x - out),)


class _SoftmaxB(Node):
    __slots__ = ("dim",)

    def backward(self, g):
        (y,) = self.saved
        return (y * (g - (g * y).sum(axis=self.dim, keepdims=True)),)


class _LogSoftmaxB(Node):
    __slots__ = ("dim",)

    def backward(self, g):
        (y,) = self.saved
        return (g - np.exp(y) * g.sum(axis=self.dim, keepdims=True),)


class _ReshapeB(Node):
    __slots__ = ("shape",)

    def backward(self, g):
        return (g.reshape(self.shape),)


class _PermuteB(Node):
    __slots__ = ("inv",)

    def backward(self, g):
        return (g.transpose(self.inv),)


class _ExpandB(Node):
    __slots__ = ("shape",)

    def backward(self, g):
        return (_unbroadcast(g, self.shape),)


class _CastB(Node):
    __slots__ = ("dtype",)

    def backward(self, g):
        return (g.astype(self.dtype, copy=False),)


class _IndexB(Node):
    __slots__ = ("key", "shape", "dtype", "advanced")

    def backward(self, g):
        # scattered lazily: the engine adds it in place into the input's gradient buffer
        return (IndexGrad(self.key, g, self.shape, self.dtype, self.advanced),)


class _SetItemB(Node):
    __slots__ = ("key", "vshape")

    def backward(self, g):
        ex, ev = self.inputs
        gx = gv = None
        if ex is not None:
            gx = np.array(g, copy=True)
            gx[self.key] = 0
        if ev is not None:
            gv = _unbroadcast(np.asarray(g[self.key]), tuple(self.vshape))
        return gx, gv


class _CatB(Node):
    __slots__ = ("dim", "bounds")

    def backward(self, g):
        parts = np.split(g, self.bounds, axis=self.dim)
        return tuple(p if e is not None else None for p, e in zip(parts, self.inputs))


class _StackB(Node):
    __slots__ = ("dim",)

    def backward(self, g):
        return tuple(
            np.take(g, i, axis=self.dim) if e is not None else None for i, e in enumerate(self.inputs)
        )


class _PadB(Node):
    __slots__ = ("key",)

    def backward(self, g):
        return (g[self.key],)


class _WhereB(Node):
    __slots__ = ("sa", "sb")

    def backward(self, g):
        ea, eb = self.inputs
        (cond,) = self.saved
        ga = _unbroadcast(np.where(cond, g, 0), self.sa) if ea is not None else None
        gb = _unbroadcast(np.where(cond, 0, g), self.sb) if eb is not None else None
        return ga, gb


class _MaxMinB(Node):
    """maximum/minimum: ties share the gradient half and half (PyTorch's rule)."""

    __slots__ = ("is_max",)

    def backward(self, g):
        ea, eb = self.inputs
        x, y = self.saved
        win = (x > y) if self.is_max else (x < y)
        tie = x == y
        wa = win + 0.5 * tie
        ga = _unbroadcast(g * wa, np.shape(x)) if ea is not None else None
        gb = _unbroadcast(g * (1.0 - wa), np.shape(y)) if eb is not None else None
        return ga, gb


class _FixedB(Node):
    """Backward of an op whose input gradient is ``g * factor`` for a saved array."""

    __slots__ = ()

    def backward(self, g):
        return (g * self.saved[0],)


# Unary backward rules (their __name__ names the node in grad_fn reprs).


def NegBackward(g):
    return -g


def ExpBackward(g, out):
    return g * out


def LogBackward(g, x):
    return g / x


def Log1pBackward(g, x):
    return g / (1 + x)


def SqrtBackward(g, out):
    return g / (2 * out)


def AbsBackward(g, x):
    return g * np.sign(x)


def SinBackward(g, x):
    return g * np.cos(x)


def CosBackward(g, x):
    return -g * np.sin(x)


def TanhBackward(g, out):
    return g * (1 - out * out)


def SigmoidBackward(g, out):
    return g * out * (1 - out)


def ReluBackward(g, out):
    if g.dtype == out.dtype and _kernel_ok(out, _RUST_ACT):
        return _act_ops.relu_backward(g, out)  # out > 0 exactly where the input was
    return g * (out > 0)


def PowScalarBackward(g, x, p):
    return g * p * np.power(x, p - 1)


def CumsumBackward(g, d):
    return np.flip(np.cumsum(np.flip(g, d), axis=d), d)


def ClampBackward(g, mask):
    return g * mask


def LeakyReluBackward(g, x, slope):
    return g * np.where(x > 0, 1.0, slope).astype(g.dtype, copy=False)


def EluBackward(g, x, out, alpha, scale):
    return g * np.where(x > 0, scale, out + alpha * scale).astype(g.dtype, copy=False)


def KernelGeluBackward(g, x, approximate):
    return _act_ops.gelu_backward(g, x, approximate)


def KernelSiluBackward(g, x):
    return _act_ops.silu_backward(g, x)


# Elementwise activations and softmax run on the Rust kernels of ``oxinet.ops.activation``
# from this many elements on; below it NumPy's ufuncs win (a kernel call costs ~9 us).
# Measured (float32, 2-core machine under load, medians; NumPy vs Rust):
#   64x64:    sigmoid 4.4 vs 9.5 us, silu 5.2 vs 9.2, softmax 13 vs 17, relu 2.3 vs 1.3
#   256x256:  sigmoid 37 vs 28, silu 43 vs 29, elu 330 vs 47, softplus 81 vs 60, softmax 87 vs 66
#   512x1024: sigmoid 335 vs 253, silu 413 vs 255, softmax 610 vs 313, log_softmax 604 vs 329;
#   tanh stays on NumPy (101 vs 367 us), ReLU always on Rust, GELU (exact and tanh) always
#   on Rust (tanh form: 232 us vs 10 us at 64x64; exact: math.erf per element otherwise).
_RUST_ACT = 1 << 16
_RUST_SOFTMAX = 1 << 17


def _kernel_ok(d, threshold):
    return d.size >= threshold and (d.dtype == np.float32 or d.dtype == np.float64)


def GeluBackward(g, x):
    cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return g * (cdf + x * pdf)


def GeluTanhBackward(g, x):
    c = math.sqrt(2.0 / math.pi)
    inner = c * (x + 0.044715 * x**3)
    t = np.tanh(inner)
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))


def SiluBackward(g, x, s):
    return g * s * (1 + x * (1 - s))


def SoftplusBackward(g, x, beta, threshold):
    z = x * beta
    s = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
    return g * np.where(z > threshold, 1.0, s).astype(g.dtype, copy=False)


def LogSigmoidBackward(g, x):
    return g * (1.0 / (1.0 + np.exp(np.clip(x, -500, 500))))


_erf_vec = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    """Exact error function (``math.erf`` per element; NumPy has none)."""
    x = np.asarray(x)
    return _erf_vec(x).astype(x.dtype if x.dtype.kind == "f" else np.float64)
