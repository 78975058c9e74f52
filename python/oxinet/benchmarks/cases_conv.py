"""Convolution cases (issue 3): the seven conv2d shapes, forward and forward+backward.

The NumPy peer is a good NumPy implementation: im2col through
``sliding_window_view`` and one ``tensordot`` (OpenBLAS SGEMM) for the forward and the
weight gradient; the input gradient is one ``tensordot`` and a scatter-add per kernel
tap; depthwise is a shift-and-add per kernel tap. fwd+bwd computes the output, dx, dw
and db (3x the forward's FLOPs counted).
"""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

# torch is imported by its factories, in its own timing process (which may run another
# interpreter, see the harness); where it is missing the row reads n/a
_PEERS = ("numpy", "torch")


def _pads(k, padding):
    if padding == "same":
        total = k - 1
        return total // 2, total - total // 2
    return padding, padding


def _np_windows(x, k, stride, padding):
    lo, hi = _pads(k, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (lo, hi), (lo, hi)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return xp, win  # win: (N, C, OH, OW, k, k)


def np_conv2d(x, w, b, stride, padding, groups):
    k = w.shape[-1]
    if groups == 1:
        _, win = _np_windows(x, k, stride, padding)
        y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, O)
        y = y.transpose(0, 3, 1, 2)
    else:  # depthwise, multiplier 1
        xp, win = _np_windows(x, k, stride, padding)
        oh, ow = win.shape[2:4]
        y = np.zeros((x.shape[0], w.shape[0], oh, ow), x.dtype)
        for i in range(k):
            for j in range(k):
                y += w[None, :, 0, i, j, None, None] * xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def np_conv2d_backward(dy, x, w, stride, padding, groups):
    k = w.shape[-1]
    lo, _ = _pads(k, padding)
    xp, win = _np_windows(x, k, stride, padding)
    oh, ow = dy.shape[2:]
    dxp = np.zeros_like(xp)
    if groups == 1:
        dw = np.tensordot(dy, win, axes=([0, 2, 3], [0, 2, 3]))  # (O, C, k, k)
        dcol = np.tensordot(dy, w, axes=([1], [0]))  # (N, OH, OW, C, k, k)
        for i in range(k):
            for j in range(k):
                dxp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += dcol[..., i, j].transpose(0, 3, 1, 2)
    else:
        dw = np.zeros_like(w)
        for i in range(k):
            for j in range(k):
                xs = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
                dw[:, 0, i, j] = np.einsum("nchw,nchw->c", dy, xs)
                dxp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += w[None, :, 0, i, j, None, None] * dy
    h, wd = x.shape[2:]
    dx = dxp[:, :, lo : lo + h, lo : lo + wd]
    return dx, dw, dy.sum(axis=(0, 2, 3))


SHAPES = [
    # label, N, C, H, k, stride, padding, O, groups
    ("N64 C3 64x64 k4 same O8", 64, 3, 64, 4, 1, "same", 8, 1),
    ("N32 C64 56x56 k3 p1 O64", 32, 64, 56, 3, 1, 1, 64, 1),
    ("N256 C6 14x14 k5 O16", 256, 6, 14, 5, 1, 0, 16, 1),
    ("N32 C256 14x14 k3 p1 O256", 32, 256, 14, 3, 1, 1, 256, 1),
    ("N32 C256 56x56 k1 O64", 32, 256, 56, 1, 1, 0, 64, 1),
    ("N8 C3 224x224 k7 s2 p3 O64", 8, 3, 224, 7, 2, 3, 64, 1),
    ("N32 C128 56x56 k3 p1 depthwise", 32, 128, 56, 3, 1, 1, 128, 128),
]


def _out(h, k, s, p):
    lo, hi = _pads(k, p)
    return (h + lo + hi - k) // s + 1


def _register(label, n, c, h, k, s, p, o, g):
    oh = _out(h, k, s, p)
    flops = 2.0 * n * o * oh * oh * (c // g) * k * k

    def inputs():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((o, c // g, k, k), dtype=np.float32) * 0.1
        b = rng.standard_normal(o, dtype=np.float32)
        dy = rng.standard_normal((n, o, oh, oh), dtype=np.float32)
        return x, w, b, dy

    @case(f"conv2d fwd {label}", group="conv", flops=flops, peers=_PEERS)
    def fwd(lib):
        x, w, b, _ = inputs()
        if lib == "oxinet":
            import oxinet.ops as F

            return lambda: F.conv2d(x, w, b, stride=s, padding=p, groups=g)
        if lib == "numpy":
            return lambda: np_conv2d(x, w, b, s, p, g)
        if lib == "torch":
            import torch
            import torch.nn.functional as TF

            tx, tw, tb = map(torch.from_numpy, (x, w, b))
            return lambda: TF.conv2d(tx, tw, tb, stride=s, padding=p, groups=g)
        return None

    @case(f"conv2d fwd+bwd {label}", group="conv", flops=3 * flops, peers=_PEERS)
    def fwdbwd(lib):
        x, w, b, dy = inputs()
        if lib == "oxinet":
            import oxinet.ops as F

            def run():
                F.conv2d(x, w, b, stride=s, padding=p, groups=g)
                return F.conv2d_backward(dy, x, w, stride=s, padding=p, groups=g)

            return run
        if lib == "numpy":

            def run():
                np_conv2d(x, w, b, s, p, g)
                return np_conv2d_backward(dy, x, w, s, p, g)

            return run
        if lib == "torch":
            import torch
            import torch.nn.functional as TF

            tx = torch.from_numpy(x).requires_grad_()
            tw = torch.from_numpy(w).requires_grad_()
            tb = torch.from_numpy(b).requires_grad_()
            tdy = torch.from_numpy(dy)

            def run():
                y = TF.conv2d(tx, tw, tb, stride=s, padding=p, groups=g)
                y.backward(tdy)

            return run
        return None


for _shape in SHAPES:
    _register(*_shape)


# --- the other convolution ops: one forward row each, against NumPy written the same way


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@case("conv1d fwd N32 C64 L1024 k5 p2 O64", group="conv", flops=2.0 * 32 * 64 * 1024 * 64 * 5, peers=("numpy",))
def conv1d_fwd(lib):
    x, w = _rand(32, 64, 1024), _rand(64, 64, 5, seed=1)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.conv1d(x, w, padding=2)

    def numpy_conv1d():
        win = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (2, 2))), 5, axis=2)
        return np.tensordot(win, w, axes=([1, 3], [1, 2])).transpose(0, 2, 1)  # (N, O, L)

    return numpy_conv1d if lib == "numpy" else None


@case("conv3d fwd N4 C16 16x16x16 k3 p1 O16", group="conv", flops=2.0 * 4 * 16 * 16**3 * 16 * 27, peers=("numpy",))
def conv3d_fwd(lib):
    x, w = _rand(4, 16, 16, 16, 16), _rand(16, 16, 3, 3, 3, seed=1)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.conv3d(x, w, padding=1)

    def numpy_conv3d():
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3, 3), axis=(2, 3, 4))
        return np.tensordot(win, w, axes=([1, 5, 6, 7], [1, 2, 3, 4])).transpose(0, 4, 1, 2, 3)

    return numpy_conv3d if lib == "numpy" else None


@case("conv_transpose2d fwd N16 C64 28x28 k4 s2 p1 O32", group="conv",
      flops=2.0 * 16 * 64 * 28 * 28 * 32 * 16, peers=("numpy",))
def conv_transpose2d_fwd(lib):
    x, w = _rand(16, 64, 28, 28), _rand(64, 32, 4, 4, seed=1)  # w: (C_in, C_out, kh, kw)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.conv_transpose2d(x, w, stride=2, padding=1)

    def numpy_conv_transpose2d():
        # each input pixel scatters x . w over a k x k patch of a stride-2 grid, then crop the padding
        cols = np.tensordot(x, w, axes=([1], [0]))  # (N, H, W, O, k, k)
        full = np.zeros((16, 32, 2 * 27 + 4, 2 * 27 + 4), np.float32)
        for i in range(4):
            for j in range(4):
                full[:, :, i:i + 56:2, j:j + 56:2] += cols[..., i, j].transpose(0, 3, 1, 2)
        return full[:, :, 1:57, 1:57]

    return numpy_conv_transpose2d if lib == "numpy" else None


@case("im2col N32 C64 56x56 k3 p1", group="conv", bytes=2.0 * 32 * 64 * 9 * 56 * 56 * 4, peers=("numpy",))
def im2col_case(lib):
    x = _rand(32, 64, 56, 56)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.im2col(x, 3, padding=1)

    def numpy_im2col():
        win = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
        return np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(32, 64 * 9, 56 * 56)

    return numpy_im2col if lib == "numpy" else None
