"""Resizing (``torch.nn.functional.interpolate``) on NCL / NCHW arrays, with its backward.

Modes: ``'nearest'`` (3-D or 4-D input), ``'linear'`` (3-D) and ``'bilinear'`` (4-D).
Coordinates follow PyTorch exactly:

- nearest: ``src = min(floor(dst * scale), in - 1)`` in float32, where ``scale`` is
  ``1 / scale_factor`` when the size came from ``scale_factor`` (and
  ``recompute_scale_factor`` is not True), else ``in / out``.
- linear/bilinear, ``align_corners=True``: ``src = dst * (in - 1) / (out - 1)``.
- linear/bilinear, ``align_corners=False`` (the default): ``src = scale * (dst + 0.5) - 0.5``,
  negative values clamped to 0.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, kernel_for
from oxinet.ops._spatial import as_planes, planes, shape_tuple

__all__ = ["interpolate", "interpolate_backward"]

_MODES = {"nearest": (1, 2), "linear": (1,), "bilinear": (2,)}


def _resolve(op, shape, size, scale_factor, mode, align_corners, recompute_scale_factor, name):
    """Output spatial size, per-axis scales for the kernel, and align_corners."""
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(
            f"{op}: 'mode' must be one of {sorted(_MODES)}, got {mode!r}"
        )
    spatial = len(shape) - 2
    if spatial not in _MODES[mode]:
        want = " or ".join(f"{s + 2}-D" for s in _MODES[mode])
        raise ValueError(
            f"{op}: mode {mode!r} needs {want} input (N, C, ...), but '{name}' has shape {tuple(shape)}"
        )
    if any(v == 0 for v in shape[1:]):
        raise ValueError(f"{op}: '{name}' has shape {tuple(shape)}; only the batch dimension may be 0")
    if mode == "nearest":
        if align_corners is not None:
            raise ValueError(
                f"{op}: 'align_corners' can only be set with mode 'linear' or 'bilinear', "
                f"not {mode!r}"
            )
        align = False
    else:
        align = bool(align_corners) if align_corners is not None else False
    ins = tuple(shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of 'size' and 'scale_factor' must be given")
    if size is not None:
        sizes = list(size) if isinstance(size, (tuple, list)) else [size] * spatial
        if len(sizes) != spatial:
            raise ValueError(f"{op}: 'size' must have {spatial} elements for '{name}' of shape {tuple(shape)}, got {size!r}")
        outs = shape_tuple(sizes, "size", op)
        if any(v < 1 for v in outs):
            raise ValueError(f"{op}: 'size' must be positive, got {size!r}")
        scales = [None] * spatial
    else:
        facs = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * spatial
        if len(facs) != spatial:
            raise ValueError(
                f"{op}: 'scale_factor' must have {spatial} elements for '{name}' of shape {tuple(shape)}, got {scale_factor!r}"
            )
        try:
            facs = [float(f) for f in facs]
        except (TypeError, ValueError):
            raise TypeError(f"{op}: 'scale_factor' must be a number or numbers, got {scale_factor!r}") from None
        if any(not (f > 0) or math.isinf(f) for f in facs):
            raise ValueError(f"{op}: 'scale_factor' must be positive and finite, got {scale_factor!r}")
        outs = tuple(int(math.floor(n * f)) for n, f in zip(ins, facs))
        if any(v < 1 for v in outs):
            raise ValueError(
                f"{op}: 'scale_factor' {scale_factor!r} gives an empty output {outs} for '{name}' "
                f"of shape {tuple(shape)}"
            )
        scales = [None] * spatial if recompute_scale_factor else facs
    if spatial == 1:
        return (1,) + outs, [None] + scales, align
    return outs, scales, align


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize x: (N, C, L) or (N, C, H, W), float32/float64, to ``size`` or by ``scale_factor``
    (output length ``floor(n * scale_factor)``). Returns (N, C, *out) in x's dtype."""
    op = "interpolate"
    x = as_float_array(x, "x", op)
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: 'x' must be 3-D (N, C, L) or 4-D (N, C, H, W), got shape {x.shape}")
    (oh, ow), scales, align = _resolve(op, x.shape, size, scale_factor, mode, align_corners,
                                       recompute_scale_factor, "x")
    spatial = x.ndim - 2
    x3 = as_planes(x, spatial, x.dtype)
    out = np.empty((x3.shape[0], oh, ow), x.dtype)
    kmode = "nearest" if mode == "nearest" else "bilinear"
    kernel_for(x.dtype, _core.interpolate_f32, _core.interpolate_f64)(
        x3, out, kmode, align, scales[0], scales[1]
    )
    return out.reshape(x.shape[:2] + ((ow,) if spatial == 1 else (oh, ow)))


def interpolate_backward(dy, input_shape, size=None, scale_factor=None, mode="nearest",
                         align_corners=None, recompute_scale_factor=None):
    """Gradient of :func:`interpolate` called with the same arguments on an array of shape
    ``input_shape``: dy has the forward output's shape; returns dx of ``input_shape``."""
    op = "interpolate_backward"
    dy = as_float_array(dy, "dy", op)
    shape = shape_tuple(input_shape, "input_shape", op)
    if len(shape) not in (3, 4):
        raise ValueError(f"{op}: 'input_shape' must have 3 or 4 dims, got {shape}")
    if size is None and scale_factor is None:
        size = dy.shape[2:]
    (oh, ow), scales, align = _resolve(op, shape, size, scale_factor, mode, align_corners,
                                       recompute_scale_factor, "input_shape")
    spatial = len(shape) - 2
    expected = shape[:2] + ((ow,) if spatial == 1 else (oh, ow))
    if dy.shape != expected:
        raise ValueError(f"{op}: 'dy' has shape {dy.shape}, expected {expected}")
    dx = np.empty(planes(shape, spatial), dy.dtype)
    kmode = "nearest" if mode == "nearest" else "bilinear"
    kernel_for(dy.dtype, _core.interpolate_backward_f32, _core.interpolate_backward_f64)(
        as_planes(dy, spatial, dy.dtype), dx, kmode, align, scales[0], scales[1]
    )
    return dx.reshape(shape)
