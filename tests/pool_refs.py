"""Naive NumPy loop references for the pooling and interpolation tests.

Written from the course's pooling definition (INVENTORY F30: max / mean of each window,
n_out = floor((n + 2p - f) / s) + 1) extended with PyTorch's documented rules for
dilation, ceil_mode, count_include_pad, divisor_override, adaptive windows and the
interpolation coordinate maps.
"""

from __future__ import annotations

import math

import numpy as np


def out_len(n, k, s, p=0, d=1, ceil=False):
    eff = d * (k - 1) + 1
    if ceil:
        o = -(-(n + 2 * p - eff) // s) + 1
        if (o - 1) * s >= n + p:  # last window must start inside input or left padding
            o -= 1
    else:
        o = (n + 2 * p - eff) // s + 1
    return o


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def max_pool2d(x, k, s=None, p=0, d=1, ceil=False):
    """Returns (y, flat indices) with PyTorch's scan order and NaN rule."""
    k = _pair(k)
    s = k if s is None else _pair(s)
    p, d = _pair(p), _pair(d)
    n_, c_, h, w = x.shape
    oh = out_len(h, k[0], s[0], p[0], d[0], ceil)
    ow = out_len(w, k[1], s[1], p[1], d[1], ceil)
    y = np.empty((n_, c_, oh, ow), x.dtype)
    ix = np.empty((n_, c_, oh, ow), np.int64)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    best, arg = None, None
                    for a in range(k[0]):
                        r = i * s[0] - p[0] + a * d[0]
                        if not 0 <= r < h:
                            continue
                        for b in range(k[1]):
                            q = j * s[1] - p[1] + b * d[1]
                            if not 0 <= q < w:
                                continue
                            v = x[n, c, r, q]
                            if arg is None or v > best or math.isnan(v):
                                best, arg = v, r * w + q
                    if arg is None:  # every tap in padding (possible with dilation): -inf
                        r0 = i * s[0] - p[0]
                        while r0 < 0:
                            r0 += d[0]
                        q0 = j * s[1] - p[1]
                        while q0 < 0:
                            q0 += d[1]
                        best, arg = -np.inf, min(r0, h - 1) * w + min(q0, w - 1)
                    y[n, c, i, j] = best
                    ix[n, c, i, j] = arg
    return y, ix


def avg_pool2d(x, k, s=None, p=0, ceil=False, include_pad=True, divisor=None):
    k = _pair(k)
    s = k if s is None else _pair(s)
    p = _pair(p)
    n_, c_, h, w = x.shape
    oh = out_len(h, k[0], s[0], p[0], 1, ceil)
    ow = out_len(w, k[1], s[1], p[1], 1, ceil)
    y = np.empty((n_, c_, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            area = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            win = x[:, :, h0:h1, w0:w1]
            if divisor is not None:
                dv = divisor
            elif include_pad:
                dv = area
            else:
                dv = (h1 - h0) * (w1 - w0)
            y[:, :, i, j] = win.sum(axis=(2, 3)) / dv
    return y


def adaptive_bounds(i, n, out):
    return (i * n) // out, -(-((i + 1) * n) // out)


def adaptive_pool2d(x, oh, ow, kind):
    n_, c_, h, w = x.shape
    y = np.empty((n_, c_, oh, ow), x.dtype)
    ix = np.empty((n_, c_, oh, ow), np.int64)
    for i in range(oh):
        h0, h1 = adaptive_bounds(i, h, oh)
        for j in range(ow):
            w0, w1 = adaptive_bounds(j, w, ow)
            win = x[:, :, h0:h1, w0:w1]
            if kind == "avg":
                y[:, :, i, j] = win.mean(axis=(2, 3))
            else:
                flat = win.reshape(n_, c_, -1)
                a = np.argmax(flat, axis=2)
                y[:, :, i, j] = np.take_along_axis(flat, a[..., None], 2)[..., 0]
                ix[:, :, i, j] = (h0 + a // (w1 - w0)) * w + w0 + a % (w1 - w0)
    return y, ix


def nearest_src(n_in, n_out, scale=None):
    out = []
    for o in range(n_out):
        if n_out == n_in:
            out.append(o)
        elif n_out == 2 * n_in:
            out.append(o // 2)
        else:
            sc = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
            out.append(min(int(np.floor(np.float32(o) * sc)), n_in - 1))
    return out


def linear_src(n_in, n_out, align, scale, dtype):
    """(i0, i1, lambda1) per output, PyTorch's area_pixel_compute_source_index."""
    t = np.dtype(dtype).type
    res = []
    for o in range(n_out):
        if align:
            sc = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
            src = sc * t(o)
        else:
            sc = t(1.0 / scale) if scale else t(n_in) / t(n_out)
            src = t(float(sc) * (o + 0.5) - 0.5)
            src = max(src, t(0))
        i0 = min(int(np.floor(src)), n_in - 1)
        lam = min(max(src - t(i0), t(0)), t(1))
        i1 = i0 + 1 if i0 < n_in - 1 else i0
        res.append((i0, i1, lam))
    return res


def interpolate(x, oh, ow, mode, align=False, scales=(None, None)):
    n_, c_, h, w = x.shape
    y = np.empty((n_, c_, oh, ow), x.dtype)
    if mode == "nearest":
        rh, rw = nearest_src(h, oh, scales[0]), nearest_src(w, ow, scales[1])
        for i in range(oh):
            for j in range(ow):
                y[:, :, i, j] = x[:, :, rh[i], rw[j]]
        return y
    th = linear_src(h, oh, align, scales[0], x.dtype)
    tw = linear_src(w, ow, align, scales[1], x.dtype)
    one = x.dtype.type(1)
    for i, (a0, a1, lh) in enumerate(th):
        for j, (b0, b1, lw) in enumerate(tw):
            y[:, :, i, j] = (one - lh) * ((one - lw) * x[:, :, a0, b0] + lw * x[:, :, a0, b1]) + lh * (
                (one - lw) * x[:, :, a1, b0] + lw * x[:, :, a1, b1]
            )
    return y
