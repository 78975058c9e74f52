"""Benchmark cases of the pooling family (group "pool").

The issue-3 shapes: max/avg pooling 2x2 s2 and 3x3 s2 p1 on N64 C64 56x56 float32,
forward and backward. Effective bytes: forward = input read + output written (+ int64
indices when returned); backward = dy read + dx written. PyTorch is not installed here;
PERFORMANCE.md puts its NCHW max_pool2d at 1-2 GB/s on this machine. The NumPy peers
are the usual tricks: reshape-max/mean for 2x2 s2, padded sliding_window_view for 3x3.
"""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

N, C, H, W = 64, 64, 56, 56
OH = OW = 28
IN_BYTES = N * C * H * W * 4
OUT_BYTES = N * C * OH * OW * 4
IDX_BYTES = N * C * OH * OW * 8
CONFIGS = {"k2 s2": (2, 2, 0), "k3 s2 p1": (3, 2, 1)}


def _x():
    return np.random.default_rng(0).standard_normal((N, C, H, W), dtype=np.float32)


def _windows(xp, k, s):
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]


def numpy_pool(x, kind, k, s, p):
    if (k, s, p) == (2, 2, 0):
        r = x.reshape(N, C, OH, 2, OW, 2)
        return r.max(axis=(3, 5)) if kind == "max" else r.mean(axis=(3, 5), dtype=np.float32)
    pad = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad)
    win = _windows(xp, k, s)[:, :, :OH, :OW]
    return win.max(axis=(-2, -1)) if kind == "max" else win.sum(axis=(-2, -1)) / np.float32(k * k)


def numpy_pool_backward(dy, kind, k, s, p, arg=None):
    """dx via one strided add per window offset (arg: window-local argmax for max)."""
    if (k, s, p) == (2, 2, 0) and kind == "avg":
        return np.repeat(np.repeat(dy * np.float32(0.25), 2, 2), 2, 3)
    dxp = np.zeros((N, C, H + 2 * p + s, W + 2 * p + s), np.float32)
    g = dy if kind == "max" else dy / np.float32(k * k)
    for i in range(k):
        for j in range(k):
            t = g * (arg == i * k + j) if kind == "max" else g
            dxp[:, :, i:i + s * OH:s, j:j + s * OW:s] += t
    return dxp[:, :, p:p + H, p:p + W]


def _make(kind, cfg, direction, with_indices=False, reuse=False):
    k, s, p = CONFIGS[cfg]

    def factory(lib):
        x = _x()
        if lib == "oxinet":
            import oxinet.ops as F

            if kind == "max":
                y, ix = F.max_pool2d(x, k, s, p, return_indices=True)
                if direction == "fwd":
                    return lambda: F.max_pool2d(x, k, s, p, return_indices=with_indices)
                if reuse:
                    dx = np.empty_like(x)
                    return lambda: F.max_pool2d_backward(y, ix, x.shape, out=dx)
                return lambda: F.max_pool2d_backward(y, ix, x.shape)
            y = F.avg_pool2d(x, k, s, p)
            if direction == "fwd":
                return lambda: F.avg_pool2d(x, k, s, p)
            if reuse:
                dx = np.empty_like(x)
                return lambda: F.avg_pool2d_backward(y, x.shape, k, s, p, out=dx)
            return lambda: F.avg_pool2d_backward(y, x.shape, k, s, p)
        if lib == "numpy":
            if direction == "fwd":
                if with_indices:
                    return None
                return lambda: numpy_pool(x, kind, k, s, p)
            dy = numpy_pool(x, kind, k, s, p)
            arg = None
            if kind == "max":
                xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
                arg = _windows(xp, k, s)[:, :, :OH, :OW].reshape(N, C, OH, OW, k * k).argmax(-1)
            return lambda: numpy_pool_backward(dy, kind, k, s, p, arg)
        return None

    factory.__name__ = (f"{kind}_pool2d_{direction}_{cfg.replace(' ', '_')}" + ("_idx" if with_indices else "")
                        + ("_out" if reuse else ""))
    factory.__qualname__ = factory.__name__
    return factory


def _register():
    for cfg in CONFIGS:
        for kind in ("max", "avg"):
            fwd_bytes = IN_BYTES + OUT_BYTES
            name = f"{kind}_pool2d fwd N64 C64 56x56 {cfg}"
            case(name, group="pool", bytes=fwd_bytes, peers=("numpy",))(_make(kind, cfg, "fwd"))
            if kind == "max":
                case(f"max_pool2d fwd+indices N64 C64 56x56 {cfg}", group="pool",
                     bytes=fwd_bytes + IDX_BYTES, peers=("numpy",))(_make(kind, cfg, "fwd", True))
            case(f"{kind}_pool2d bwd N64 C64 56x56 {cfg}", group="pool",
                 bytes=OUT_BYTES + IN_BYTES, peers=("numpy",))(_make(kind, cfg, "bwd"))
            # the same into a reused dx (out=): no page faults of a fresh 51 MB array
            case(f"{kind}_pool2d bwd out= N64 C64 56x56 {cfg}", group="pool",
                 bytes=OUT_BYTES + IN_BYTES, peers=())(_make(kind, cfg, "bwd", reuse=True))


_register()


# --- adaptive pooling, unpooling and resampling: one forward row each


def _planes(n, c, h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w), dtype=np.float32)


@case("adaptive_avg_pool2d N64 C64 56x56 -> 7x7", group="pool", bytes=(64 * 64 * 56 * 56 + 64 * 64 * 49) * 4.0,
      peers=("numpy",))
def adaptive_avg(lib):
    x = _planes(64, 64, 56, 56)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.adaptive_avg_pool2d(x, 7)
    # 56 = 7 * 8: every adaptive window is an 8x8 block
    return (lambda: x.reshape(64, 64, 7, 8, 7, 8).mean(axis=(3, 5))) if lib == "numpy" else None


@case("max_unpool2d N64 C64 28x28 k2 -> 56x56", group="pool", bytes=(64 * 64 * 28 * 28 * 12 + 64 * 64 * 56 * 56 * 4.0),
      peers=("numpy",))
def unpool(lib):
    import oxinet.ops as F

    y, idx = F.max_pool2d(_planes(64, 64, 56, 56), 2, return_indices=True)
    if lib == "oxinet":
        return lambda: F.max_unpool2d(y, idx, 2)

    def numpy_unpool():
        out = np.zeros((64 * 64, 56 * 56), np.float32)
        np.put_along_axis(out, idx.reshape(64 * 64, -1), y.reshape(64 * 64, -1), axis=1)
        return out.reshape(64, 64, 56, 56)

    return numpy_unpool if lib == "numpy" else None


def _bilinear_matrix(n_in, n_out):
    """(n_out, n_in) interpolation weights of PyTorch's bilinear rule, align_corners=False."""
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in), np.float32)
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


@case("interpolate bilinear x2 N32 C64 28x28", group="pool", bytes=32 * 64 * 28 * 28 * 5 * 4.0, peers=("numpy",))
def bilinear_up(lib):
    x = _planes(32, 64, 28, 28)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    m = _bilinear_matrix(28, 56)
    return (lambda: m @ x @ m.T) if lib == "numpy" else None
