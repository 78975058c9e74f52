"""Naive NumPy references for the convolution tests (the course's "conv step by step":
pad, then for every output position take the window and contract it with the filters;
transposed convolution as the course's scatter of scaled filters)."""

from __future__ import annotations

import numpy as np


def tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


def same_pads(k, d):
    total = [dd * (kk - 1) for kk, dd in zip(k, d)]
    lo = [t // 2 for t in total]
    return lo, [t - l for t, l in zip(total, lo)]


def conv_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation of x (N, C, *S) with w (O, C/groups, *K), zero padding."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    k = w.shape[2:]
    stride, dilation = tup(stride, nd), tup(dilation, nd)
    if padding == "same":
        lo, hi = same_pads(k, dilation)
    elif padding == "valid":
        lo = hi = [0] * nd
    else:
        lo = hi = tup(padding, nd)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(lo, hi)))
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    out = [(xp.shape[2 + i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((n, o, *out))
    axes = list(range(1, nd + 2))
    for pos in np.ndindex(*out):
        window = tuple(
            slice(p * s, p * s + d * (kk - 1) + 1, d) for p, s, d, kk in zip(pos, stride, dilation, k)
        )
        a_prev = xp[(slice(None), slice(None)) + window]  # (N, C, *K)
        for g in range(groups):
            y[(slice(None), slice(g * og, (g + 1) * og)) + pos] = np.tensordot(
                a_prev[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og], axes=(axes, axes)
            )
    if b is not None:
        y += np.asarray(b, np.float64).reshape((1, -1) + (1,) * nd)
    return y


def conv_transpose_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Every input value scales its filters, which are added into the output at the
    strided position; then `padding` is cropped from each side (output_padding extends
    the far side)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    k = w.shape[2:]
    stride, dilation = tup(stride, nd), tup(dilation, nd)
    padding, output_padding = tup(padding, nd), tup(output_padding, nd)
    n, cin = x.shape[:2]
    cog = w.shape[1]
    cig = cin // groups
    full = [(i - 1) * s + d * (kk - 1) + 1 + op for i, s, d, kk, op in zip(x.shape[2:], stride, dilation, k, output_padding)]
    big = np.zeros((n, cog * groups, *full))
    for pos in np.ndindex(*x.shape[2:]):
        dst = tuple(slice(p * s, p * s + d * (kk - 1) + 1, d) for p, s, d, kk in zip(pos, stride, dilation, k))
        for g in range(groups):
            v = x[(slice(None), slice(g * cig, (g + 1) * cig)) + pos]  # (N, cig)
            big[(slice(None), slice(g * cog, (g + 1) * cog)) + dst] += np.tensordot(
                v, w[g * cig : (g + 1) * cig], axes=(1, 0)
            )
    crop = tuple(slice(p, f - p) for p, f in zip(padding, full))
    y = big[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + np.asarray(b, np.float64).reshape((1, -1) + (1,) * nd)
    return y


def unfold_ref(x, k, dilation=1, padding=0, stride=1):
    x = np.asarray(x, np.float64)
    k, d, p, s = tup(k, 2), tup(dilation, 2), tup(padding, 2), tup(stride, 2)
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])])
    n, c = x.shape[:2]
    oh = (xp.shape[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (xp.shape[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = np.zeros((n, c * k[0] * k[1], oh * ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * s[0] : i * s[0] + d[0] * (k[0] - 1) + 1 : d[0], j * s[1] : j * s[1] + d[1] * (k[1] - 1) + 1 : d[1]]
            cols[:, :, i * ow + j] = win.reshape(n, -1)
    return cols
