"""Box operations with ``torchvision.ops`` names and semantics.

Boxes are ``(N, 4)`` float32/float64 arrays of corners ``(x1, y1, x2, y2)`` unless a
function says otherwise. A box with ``x2 < x1`` or ``y2 < y1`` is not an error: its area
is computed as is (it can be negative) and intersections are clamped at zero, exactly as
torchvision does. Mixed float32/float64 arguments promote to float64.

Non-maximum suppression (``nms``, ``batched_nms``, ``soft_nms``) and RoI pooling
(``roi_align``, ``roi_pool`` and their backward passes) run in Rust; the IoU matrix is
one fused Rust pass. Threshold conventions:

* a box is suppressed when its IoU with a kept box is strictly greater than
  ``iou_threshold`` (torchvision), computed exactly as ``inter > iou_threshold * union``;
* ``score_threshold`` keeps boxes with ``score > score_threshold`` (OpenCV's NMSBoxes
  and the course's "discard every box with p_c <= 0.6").
"""

from __future__ import annotations

import math
import operator

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, check_out, empty, kernel_for, result_dtype

_FORMATS = ("xyxy", "xywh", "cxcywh")


# --------------------------------------------------------------------------- checks


def _boxes(x, name: str, op: str, *, batch: bool = False) -> np.ndarray:
    """``x`` as a float array of shape (N, 4), or (..., 4) when ``batch``."""
    a = as_float_array(x, name, op)
    if a.ndim == 1 and a.size == 0:
        a = a.reshape(0, 4)
    ok = a.ndim >= 1 and a.shape[-1] == 4 if batch else a.ndim == 2 and a.shape[1] == 4
    if not ok:
        want = "(..., 4)" if batch else "(N, 4)"
        raise ValueError(f"{op}: '{name}' must have shape {want}, got {a.shape}")
    return a


def _scores(x, n: int, boxes_shape: tuple, op: str) -> np.ndarray:
    s = as_float_array(x, "scores", op)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(
            f"{op}: 'scores' must have shape ({n},) to match 'boxes' of shape {boxes_shape}, got {s.shape}"
        )
    if np.isnan(s).any():
        raise ValueError(f"{op}: 'scores' contains NaN")
    return s


def _threshold(x, name: str, op: str, *, allow_none: bool = False, low: float | None = 0.0):
    if x is None and allow_none:
        return None
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: '{name}' must be a real number, got {type(x).__name__}")
    v = float(x)
    if math.isnan(v) or (low is not None and v < low):
        raise ValueError(f"{op}: '{name}' must be >= {low}, got {x}" if low is not None else f"{op}: '{name}' is NaN")
    return v


def _count(x, name: str, op: str):
    if x is None:
        return None
    try:
        v = operator.index(x)
    except TypeError:
        raise TypeError(f"{op}: '{name}' must be an int or None, got {type(x).__name__}") from None
    if v < 0:
        raise ValueError(f"{op}: '{name}' must be >= 0, got {v}")
    return v


def _c(a: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


# --------------------------------------------------------------------------- geometry


def box_area(boxes) -> np.ndarray:
    """Areas ``(x2 - x1) * (y2 - y1)`` of boxes (..., 4) in xyxy format; shape (...)."""
    b = _boxes(boxes, "boxes", "box_area", batch=True)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def box_convert(boxes, in_fmt: str, out_fmt: str) -> np.ndarray:
    """Convert boxes (..., 4) between ``'xyxy'`` (corners), ``'xywh'`` (top-left corner,
    width, height) and ``'cxcywh'`` (centre, width, height). Returns a new array."""
    op = "box_convert"
    for name, f in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if f not in _FORMATS:
            raise ValueError(f"{op}: '{name}' must be one of {_FORMATS}, got {f!r}")
    b = _boxes(boxes, "boxes", op, batch=True)
    if in_fmt == out_fmt:
        return b.copy()
    a0, a1, a2, a3 = (b[..., i] for i in range(4))
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a0, a1, a0 + a2, a1 + a3
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a0 - 0.5 * a2, a1 - 0.5 * a3, a0 + 0.5 * a2, a1 + 0.5 * a3
    else:
        x1, y1, x2, y2 = a0, a1, a2, a3
    if out_fmt == "xyxy":
        out = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    else:
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return np.stack(out, axis=-1).astype(b.dtype, copy=False)


def clip_boxes_to_image(boxes, size) -> np.ndarray:
    """Clip boxes (..., 4) in xyxy format to an image of ``size = (height, width)``:
    x into [0, width], y into [0, height]."""
    op = "clip_boxes_to_image"
    b = _boxes(boxes, "boxes", op, batch=True)
    try:
        h, w = (float(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: 'size' must be (height, width), got {size!r}") from None
    out = b.copy()
    out[..., 0::2] = np.clip(out[..., 0::2], 0, w)
    out[..., 1::2] = np.clip(out[..., 1::2], 0, h)
    return out


def remove_small_boxes(boxes, min_size: float) -> np.ndarray:
    """int64 indices of the boxes (N, 4) whose width and height are both >= ``min_size``."""
    b = _boxes(boxes, "boxes", "remove_small_boxes")
    ws, hs = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return np.flatnonzero((ws >= min_size) & (hs >= min_size)).astype(np.int64)


def _pair(boxes1, boxes2, op: str):
    a = _boxes(boxes1, "boxes1", op)
    b = _boxes(boxes2, "boxes2", op)
    dt = result_dtype(a, b)
    return a.astype(dt, copy=False), b.astype(dt, copy=False), dt


def box_iou(boxes1, boxes2, *, out: np.ndarray | None = None) -> np.ndarray:
    """Pairwise IoU (N, M) of boxes1 (N, 4) and boxes2 (M, 4), xyxy format.

    ``inter / (area1 + area2 - inter)`` as torchvision computes it (two zero-area
    boxes give NaN). One fused, parallel Rust pass; no (N, M, 2) temporaries.
    ``out``: an optional C-contiguous (N, M) array of the result dtype to write into
    (for large N * M, reusing it saves the page faults of a fresh allocation).
    """
    op = "box_iou"
    a, b, dt = _pair(boxes1, boxes2, op)
    shape = (a.shape[0], b.shape[0])
    if out is None:
        out = empty(shape, dt)
    else:
        check_out(out, shape, dt, op, a, b)
        if not out.flags.c_contiguous:
            raise ValueError(f"{op}: 'out' must be C-contiguous")
    if out.size:
        kernel_for(dt, _core.box_iou_f32, _core.box_iou_f64)(_c(a, dt), _c(b, dt), out)
    return out


def _inter_union(a: np.ndarray, b: np.ndarray):
    """Intersections and unions of broadcast box arrays (..., 4)."""
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter, area_a + area_b - inter


def _giou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter, union = _inter_union(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
        lt = np.minimum(a[..., :2], b[..., :2])
        rb = np.maximum(a[..., 2:], b[..., 2:])
        wh = np.clip(rb - lt, 0, None)
        enclose = wh[..., 0] * wh[..., 1]
        return iou - (enclose - union) / enclose


def generalized_box_iou(boxes1, boxes2) -> np.ndarray:
    """Pairwise generalized IoU (N, M): ``IoU - (C - union) / C`` with C the area of the
    smallest box enclosing both (torchvision's formula; values in [-1, 1])."""
    op = "generalized_box_iou"
    a, b, dt = _pair(boxes1, boxes2, op)
    out = empty((a.shape[0], b.shape[0]), dt)
    if out.size:
        # One fused parallel Rust pass, same operation order as the NumPy formula (_giou).
        kernel_for(dt, _core.generalized_box_iou_f32, _core.generalized_box_iou_f64)(_c(a, dt), _c(b, dt), out)
    return out


def _matched(boxes1, boxes2, op: str):
    a, b, dt = _pair(boxes1, boxes2, op)
    if a.shape != b.shape:
        raise ValueError(f"{op}: 'boxes1' and 'boxes2' must have the same shape (N, 4), got {a.shape} and {b.shape}")
    return a, b, dt


def elementwise_box_iou(boxes1, boxes2) -> np.ndarray:
    """IoU of matched pairs: ``out[i] = IoU(boxes1[i], boxes2[i])``, both (N, 4); shape (N,)."""
    a, b, dt = _matched(boxes1, boxes2, "elementwise_box_iou")
    inter, union = _inter_union(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (inter / union).astype(dt, copy=False)


def elementwise_generalized_box_iou(boxes1, boxes2) -> np.ndarray:
    """Generalized IoU of matched pairs, both (N, 4); shape (N,)."""
    a, b, dt = _matched(boxes1, boxes2, "elementwise_generalized_box_iou")
    return _giou(a, b).astype(dt, copy=False)


def _max_grads(x, y):
    """Gradient shares of max(x, y) w.r.t. x and y (ties split evenly, as PyTorch)."""
    gx = np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))
    return gx, 1.0 - gx


def _giou_backward(g: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Gradients (broadcast shapes) of sum(g * giou(a, b)) w.r.t. a and b (..., 4)."""
    ax1, ay1, ax2, ay2 = (a[..., i] for i in range(4))
    bx1, by1, bx2, by2 = (b[..., i] for i in range(4))
    # Intersection sides: min(x2) - max(x1), clamped at 0 (gradient passes at >= 0).
    rw, rh = np.minimum(ax2, bx2) - np.maximum(ax1, bx1), np.minimum(ay2, by2) - np.maximum(ay1, by1)
    iw, ih = np.clip(rw, 0, None), np.clip(rh, 0, None)
    inter = iw * ih
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = area_a + area_b - inter
    cw_raw, ch_raw = np.maximum(ax2, bx2) - np.minimum(ax1, bx1), np.maximum(ay2, by2) - np.minimum(ay1, by1)
    cw, ch = np.clip(cw_raw, 0, None), np.clip(ch_raw, 0, None)
    c = cw * ch
    with np.errstate(divide="ignore", invalid="ignore"):
        # giou = inter / union - 1 + union / c
        g_inter = g * (1.0 / union + inter / union**2 - 1.0 / c)
        g_area = g * (-inter / union**2 + 1.0 / c)  # same for both areas
        g_c = g * (-union / c**2)
    g_iw = g_inter * ih * (rw >= 0)
    g_ih = g_inter * iw * (rh >= 0)
    g_cw = g_c * ch * (cw_raw >= 0)
    g_ch = g_c * cw * (ch_raw >= 0)
    # min(ax2, bx2) = -max(-ax2, -bx2): shares from _max_grads on the negated values.
    s_ax2, s_bx2 = _max_grads(-ax2, -bx2)
    s_ay2, s_by2 = _max_grads(-ay2, -by2)
    s_ax1, s_bx1 = _max_grads(ax1, bx1)
    s_ay1, s_by1 = _max_grads(ay1, by1)
    e_ax2, e_bx2 = _max_grads(ax2, bx2)
    e_ay2, e_by2 = _max_grads(ay2, by2)
    e_ax1, e_bx1 = _max_grads(-ax1, -bx1)
    e_ay1, e_by1 = _max_grads(-ay1, -by1)
    ga = np.stack([
        -g_area * (ay2 - ay1) - g_iw * s_ax1 - g_cw * e_ax1,
        -g_area * (ax2 - ax1) - g_ih * s_ay1 - g_ch * e_ay1,
        g_area * (ay2 - ay1) + g_iw * s_ax2 + g_cw * e_ax2,
        g_area * (ax2 - ax1) + g_ih * s_ay2 + g_ch * e_ay2,
    ], axis=-1)
    gb = np.stack([
        -g_area * (by2 - by1) - g_iw * s_bx1 - g_cw * e_bx1,
        -g_area * (bx2 - bx1) - g_ih * s_by1 - g_ch * e_by1,
        g_area * (by2 - by1) + g_iw * s_bx2 + g_cw * e_bx2,
        g_area * (bx2 - bx1) + g_ih * s_by2 + g_ch * e_by2,
    ], axis=-1)
    return ga, gb


def generalized_box_iou_backward(grad_output, boxes1, boxes2):
    """Gradients of :func:`generalized_box_iou`: grad_output (N, M) -> (grad_boxes1 (N, 4),
    grad_boxes2 (M, 4)). At ties of min/max the gradient is split evenly (as PyTorch)."""
    op = "generalized_box_iou_backward"
    a, b, dt = _pair(boxes1, boxes2, op)
    g = as_float_array(grad_output, "grad_output", op)
    if g.shape != (a.shape[0], b.shape[0]):
        raise ValueError(f"{op}: 'grad_output' has shape {g.shape}, expected {(a.shape[0], b.shape[0])}")
    dt = result_dtype(g, a)
    ga, gb = _giou_backward(g, a[:, None, :], b[None, :, :])
    return ga.sum(axis=1).astype(dt, copy=False), gb.sum(axis=0).astype(dt, copy=False)


def elementwise_generalized_box_iou_backward(grad_output, boxes1, boxes2):
    """Gradients of :func:`elementwise_generalized_box_iou` (a GIoU loss's backward):
    grad_output (N,) -> (grad_boxes1 (N, 4), grad_boxes2 (N, 4))."""
    op = "elementwise_generalized_box_iou_backward"
    a, b, dt = _matched(boxes1, boxes2, op)
    g = as_float_array(grad_output, "grad_output", op)
    if g.shape != (a.shape[0],):
        raise ValueError(f"{op}: 'grad_output' has shape {g.shape}, expected {(a.shape[0],)}")
    dt = result_dtype(g, a)
    ga, gb = _giou_backward(g, a, b)
    return ga.astype(dt, copy=False), gb.astype(dt, copy=False)


# --------------------------------------------------------------------------- NMS


def _nms_inputs(boxes, scores, op: str):
    b = _boxes(boxes, "boxes", op)
    s = _scores(scores, b.shape[0], b.shape, op)
    dt = result_dtype(b, s)
    return _c(b, dt), _c(s, dt), dt


def nms(boxes, scores, iou_threshold: float, *, score_threshold: float | None = None,
        max_output: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression (``torchvision.ops.nms``).

    boxes: (N, 4) xyxy; scores: (N,). Repeatedly keeps the highest-scoring remaining box
    and discards the boxes whose IoU with it is > ``iou_threshold``. With
    ``score_threshold``, only boxes with ``score > score_threshold`` take part; with
    ``max_output``, at most that many indices are returned.

    Returns int64 indices of the kept boxes, sorted by decreasing score; equal scores
    are ordered by index (lower first), so the result is deterministic.
    """
    op = "nms"
    b, s, dt = _nms_inputs(boxes, scores, op)
    thr = _threshold(iou_threshold, "iou_threshold", op)
    sthr = _threshold(score_threshold, "score_threshold", op, allow_none=True, low=None)
    mo = _count(max_output, "max_output", op)
    return kernel_for(dt, _core.nms_f32, _core.nms_f64)(b, s, thr, sthr, mo)


def batched_nms(boxes, scores, idxs, iou_threshold: float, *, score_threshold: float | None = None,
                max_output: int | None = None) -> np.ndarray:
    """Class-aware NMS (``torchvision.ops.batched_nms``): boxes only suppress boxes with
    the same ``idxs`` value (an integer class or image id per box, shape (N,)).

    Returns int64 indices sorted by decreasing score (ties by lower index).
    """
    op = "batched_nms"
    b, s, dt = _nms_inputs(boxes, scores, op)
    c = np.asarray(idxs)
    if c.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'idxs' must be an integer array, got dtype {c.dtype} with shape {c.shape}")
    if c.ndim != 1 or c.shape[0] != b.shape[0]:
        raise ValueError(f"{op}: 'idxs' must have shape ({b.shape[0]},) to match 'boxes' of shape {b.shape}, got {c.shape}")
    if c.dtype == np.uint64 and c.size and c.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{op}: 'idxs' has values too large for int64")
    thr = _threshold(iou_threshold, "iou_threshold", op)
    sthr = _threshold(score_threshold, "score_threshold", op, allow_none=True, low=None)
    mo = _count(max_output, "max_output", op)
    return kernel_for(dt, _core.batched_nms_f32, _core.batched_nms_f64)(
        b, s, np.ascontiguousarray(c, dtype=np.int64), thr, sthr, mo)


def soft_nms(boxes, scores, iou_threshold: float = 0.3, sigma: float = 0.5,
             score_threshold: float = 0.001, method: str = "gaussian"):
    """Soft-NMS (Bodla et al., 2017). Instead of discarding a box that overlaps the
    selected one, decay its score: ``method='linear'`` multiplies by ``1 - IoU`` when
    ``IoU > iou_threshold``; ``method='gaussian'`` by ``exp(-IoU**2 / sigma)``. Boxes whose
    score falls below ``score_threshold`` are dropped (also initially).

    Returns ``(keep, new_scores)``: int64 indices in selection order (decreasing decayed
    score, ties by lower index) and the decayed scores, of the boxes' dtype.
    """
    op = "soft_nms"
    if method not in ("linear", "gaussian"):
        raise ValueError(f"{op}: 'method' must be 'linear' or 'gaussian', got {method!r}")
    b, s, dt = _nms_inputs(boxes, scores, op)
    thr = _threshold(iou_threshold, "iou_threshold", op)
    sig = _threshold(sigma, "sigma", op)
    if sig <= 0:
        raise ValueError(f"{op}: 'sigma' must be > 0, got {sigma}")
    sthr = _threshold(score_threshold, "score_threshold", op, low=None)
    return kernel_for(dt, _core.soft_nms_f32, _core.soft_nms_f64)(b, s, method == "gaussian", thr, sig, sthr)


# --------------------------------------------------------------------------- RoI pooling


def _output_size(output_size, op: str) -> tuple[int, int]:
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    try:
        ph, pw = (operator.index(v) for v in output_size)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: 'output_size' must be an int or (height, width), got {output_size!r}") from None
    if ph <= 0 or pw <= 0:
        raise ValueError(f"{op}: 'output_size' must be positive, got {output_size!r}")
    return ph, pw


def _rois(boxes, dtype, op: str) -> np.ndarray:
    """torchvision's two box formats as one (K, 5) array (batch_index, x1, y1, x2, y2)."""
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, bi in enumerate(boxes):
            b = _boxes(bi, f"boxes[{i}]", op)
            parts.append(np.concatenate([np.full((b.shape[0], 1), i, dtype), b.astype(dtype)], axis=1))
        r = np.concatenate(parts, axis=0) if parts else np.zeros((0, 5), dtype)
    else:
        r = as_float_array(boxes, "boxes", op)
        if r.ndim != 2 or r.shape[1] != 5:
            raise ValueError(
                f"{op}: 'boxes' must be a (K, 5) array of (batch_index, x1, y1, x2, y2) "
                f"or a list of (L, 4) arrays, got shape {r.shape}")
    return _c(r, dtype)


def _input4(x, name: str, op: str) -> np.ndarray:
    a = as_float_array(x, name, op)
    if a.ndim != 4:
        raise ValueError(f"{op}: '{name}' must be 4-D (N, C, H, W), got shape {a.shape}")
    return a


def _scale(spatial_scale, op: str) -> float:
    v = _threshold(spatial_scale, "spatial_scale", op, low=None)
    if not math.isfinite(v):
        raise ValueError(f"{op}: 'spatial_scale' must be finite, got {spatial_scale}")
    return v


def _sampling(sampling_ratio, op: str) -> int:
    try:
        return operator.index(sampling_ratio)
    except TypeError:
        raise TypeError(f"{op}: 'sampling_ratio' must be an int, got {type(sampling_ratio).__name__}") from None


def roi_align(input, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False) -> np.ndarray:
    """RoIAlign (Mask R-CNN), ``torchvision.ops.roi_align``.

    input: (N, C, H, W); boxes: (K, 5) rows (batch_index, x1, y1, x2, y2), or a list of
    N arrays (L_i, 4); box coordinates are multiplied by ``spatial_scale``. Each of the
    ``output_size`` bins averages ``sampling_ratio``^2 bilinear samples (adaptive
    ``ceil(roi_size / output_size)`` per side when <= 0; either way at most 1024 per
    side, a cap torchvision does not have). ``aligned=True`` shifts the
    boxes by -0.5 pixel. Returns (K, C, ph, pw) of the input's dtype.
    """
    op = "roi_align"
    x = _input4(input, "input", op)
    ph, pw = _output_size(output_size, op)
    dt = result_dtype(x, *([] if isinstance(boxes, (list, tuple)) else [as_float_array(boxes, "boxes", op)]))
    r = _rois(boxes, dt, op)
    f = kernel_for(dt, _core.roi_align_f32, _core.roi_align_f64)
    return f(_c(x, dt), r, ph, pw, _scale(spatial_scale, op), _sampling(sampling_ratio, op), bool(aligned))


def _input_shape(shape, op: str) -> tuple:
    try:
        s = tuple(operator.index(v) for v in shape)
    except TypeError:
        raise ValueError(f"{op}: 'input_shape' must be (N, C, H, W), got {shape!r}") from None
    if len(s) != 4 or min(s) < 0:
        raise ValueError(f"{op}: 'input_shape' must be (N, C, H, W), got {shape!r}")
    return s


def roi_align_backward(grad_output, boxes, input_shape, output_size, spatial_scale: float = 1.0,
                       sampling_ratio: int = -1, aligned: bool = False) -> np.ndarray:
    """Gradient of :func:`roi_align` with respect to its input: grad_output (K, C, ph, pw)
    -> (N, C, H, W) with ``input_shape = (N, C, H, W)``."""
    op = "roi_align_backward"
    g = _input4(grad_output, "grad_output", op)
    ph, pw = _output_size(output_size, op)
    shape = _input_shape(input_shape, op)
    dt = g.dtype
    r = _rois(boxes, dt, op)
    if g.shape != (r.shape[0], shape[1], ph, pw):
        raise ValueError(f"{op}: 'grad_output' has shape {g.shape}, expected {(r.shape[0], shape[1], ph, pw)}")
    gi = np.zeros(shape, dt)
    f = kernel_for(dt, _core.roi_align_backward_f32, _core.roi_align_backward_f64)
    f(_c(g, dt), r, gi, ph, pw, _scale(spatial_scale, op), _sampling(sampling_ratio, op), bool(aligned))
    return gi


def roi_pool(input, boxes, output_size, spatial_scale: float = 1.0, *, return_indices: bool = False):
    """RoIPool (Fast R-CNN), ``torchvision.ops.roi_pool``: max over integer bins of each
    box (corners rounded after scaling by ``spatial_scale``). Empty bins give 0.

    Returns (K, C, ph, pw); with ``return_indices=True`` also the int64 argmax (flat
    ``h * W + w`` index within each plane, -1 for empty bins) that
    :func:`roi_pool_backward` needs.
    """
    op = "roi_pool"
    x = _input4(input, "input", op)
    ph, pw = _output_size(output_size, op)
    dt = result_dtype(x, *([] if isinstance(boxes, (list, tuple)) else [as_float_array(boxes, "boxes", op)]))
    r = _rois(boxes, dt, op)
    out, arg = kernel_for(dt, _core.roi_pool_f32, _core.roi_pool_f64)(_c(x, dt), r, ph, pw, _scale(spatial_scale, op))
    return (out, arg) if return_indices else out


def roi_pool_backward(grad_output, boxes, argmax, input_shape) -> np.ndarray:
    """Gradient of :func:`roi_pool` w.r.t. its input: each output gradient goes to the
    input element that was the maximum (``argmax`` from ``roi_pool(..., return_indices=True)``)."""
    op = "roi_pool_backward"
    g = _input4(grad_output, "grad_output", op)
    shape = _input_shape(input_shape, op)
    a = np.asarray(argmax)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'argmax' must be an integer array, got dtype {a.dtype}")
    if a.shape != g.shape:
        raise ValueError(f"{op}: 'argmax' has shape {a.shape} but 'grad_output' has shape {g.shape}")
    dt = g.dtype
    r = _rois(boxes, dt, op)
    if g.shape[:2] != (r.shape[0], shape[1]):
        raise ValueError(f"{op}: 'grad_output' has shape {g.shape}, expected ({r.shape[0]}, {shape[1]}, ph, pw)")
    gi = np.zeros(shape, dt)
    f = kernel_for(dt, _core.roi_pool_backward_f32, _core.roi_pool_backward_f64)
    f(_c(g, dt), r, np.ascontiguousarray(a, dtype=np.int64), gi)
    return gi


__all__ = [
    "box_area", "box_convert", "clip_boxes_to_image", "remove_small_boxes", "box_iou",
    "generalized_box_iou", "elementwise_box_iou", "elementwise_generalized_box_iou",
    "generalized_box_iou_backward", "elementwise_generalized_box_iou_backward",
    "nms", "batched_nms", "soft_nms", "roi_align", "roi_align_backward", "roi_pool",
    "roi_pool_backward",
]
