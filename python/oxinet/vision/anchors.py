"""Anchor boxes over a feature-map grid and box coding against anchors.

``cell_anchors`` / ``anchor_grid`` follow torchvision's ``AnchorGenerator``: for each
size s and aspect ratio r (= height / width) a base anchor of width ``s / sqrt(r)`` and
height ``s * sqrt(r)`` centred on the origin (rounded to integers), ratio-major order;
the grid places every base anchor at every feature-map location ``(x * stride_w,
y * stride_h)``, location-major. ``encode_boxes`` / ``decode_boxes`` are Faster R-CNN's
box deltas (torchvision's ``BoxCoder``) with per-coordinate weights.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet.ops._checks import as_float_array, result_dtype
from oxinet.ops.boxes import _boxes

DEFAULT_CLIP = math.log(1000.0 / 16)


def _pair(v, name: str, op: str) -> tuple:
    if np.ndim(v) == 0:
        v = (v, v)
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"{op}: '{name}' must be a number or a (height, width) pair, got {v!r}")
    return v


def cell_anchors(sizes=(32, 64, 128), aspect_ratios=(0.5, 1.0, 2.0), *, dtype=np.float32) -> np.ndarray:
    """Base anchors (len(aspect_ratios) * len(sizes), 4), xyxy, centred on (0, 0)."""
    op = "cell_anchors"
    s = np.asarray(sizes, np.float64).reshape(-1)
    r = np.asarray(aspect_ratios, np.float64).reshape(-1)
    if s.size == 0 or (s <= 0).any():
        raise ValueError(f"{op}: 'sizes' must be positive, got {sizes!r}")
    if r.size == 0 or (r <= 0).any():
        raise ValueError(f"{op}: 'aspect_ratios' must be positive, got {aspect_ratios!r}")
    h_ratios = np.sqrt(r)
    w_ratios = 1.0 / h_ratios
    ws = (w_ratios[:, None] * s[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * s[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / 2).astype(dtype)


def anchor_grid(feature_size, stride, sizes=(32, 64, 128), aspect_ratios=(0.5, 1.0, 2.0), *,
                dtype=np.float32) -> np.ndarray:
    """All anchors of a feature map: (H * W * A, 4) xyxy, with ``feature_size = (H, W)``,
    ``stride`` (an int or (stride_h, stride_w)) the image pixels per feature cell, and
    A = len(sizes) * len(aspect_ratios). Row ``(y * W + x) * A + a`` is base anchor ``a``
    shifted to ``(x * stride_w, y * stride_h)``."""
    op = "anchor_grid"
    fh, fw = (int(v) for v in _pair(feature_size, "feature_size", op))
    sh, sw = (float(v) for v in _pair(stride, "stride", op))
    if fh < 0 or fw < 0:
        raise ValueError(f"{op}: 'feature_size' must be non-negative, got {feature_size!r}")
    base = cell_anchors(sizes, aspect_ratios, dtype=np.float64)
    xs = np.arange(fw) * sw
    ys = np.arange(fh) * sh
    sy, sx = np.meshgrid(ys, xs, indexing="ij")
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4).astype(dtype)


def _weights(weights, op: str) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.shape != (4,):
        raise ValueError(f"{op}: 'weights' must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
    return w


def encode_boxes(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
    """Faster R-CNN deltas of ``boxes`` (..., 4) relative to ``anchors`` (..., 4), both xyxy:
    ``(wx * (cx - cx_a) / w_a, wy * (cy - cy_a) / h_a, ww * log(w / w_a), wh * log(h / h_a))``."""
    op = "encode_boxes"
    b = _boxes(boxes, "boxes", op, batch=True)
    a = _boxes(anchors, "anchors", op, batch=True)
    dt = result_dtype(b, a)
    wx, wy, ww, wh = _weights(weights, op)
    aw, ah = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    acx, acy = a[..., 0] + 0.5 * aw, a[..., 1] + 0.5 * ah
    bw, bh = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    bcx, bcy = b[..., 0] + 0.5 * bw, b[..., 1] + 0.5 * bh
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.stack([wx * (bcx - acx) / aw, wy * (bcy - acy) / ah, ww * np.log(bw / aw), wh * np.log(bh / ah)],
                     axis=-1)
    return d.astype(dt, copy=False)


def decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0), clip: float = DEFAULT_CLIP) -> np.ndarray:
    """Inverse of :func:`encode_boxes`: boxes (..., 4) xyxy from deltas and anchors. The
    size deltas are clamped at ``clip`` (log(1000/16), torchvision's default) before exp."""
    op = "decode_boxes"
    d = as_float_array(deltas, "deltas", op)
    if d.ndim < 1 or d.shape[-1] != 4:
        raise ValueError(f"{op}: 'deltas' must have shape (..., 4), got {d.shape}")
    a = _boxes(anchors, "anchors", op, batch=True)
    dt = result_dtype(d, a)
    wx, wy, ww, wh = _weights(weights, op)
    aw, ah = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    acx, acy = a[..., 0] + 0.5 * aw, a[..., 1] + 0.5 * ah
    dx, dy = d[..., 0] / wx, d[..., 1] / wy
    dw = np.minimum(d[..., 2] / ww, clip)
    dh = np.minimum(d[..., 3] / wh, clip)
    cx, cy = dx * aw + acx, dy * ah + acy
    w, h = np.exp(dw) * aw, np.exp(dh) * ah
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1).astype(dt, copy=False)
