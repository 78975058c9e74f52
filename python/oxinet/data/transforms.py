"""Seeded data augmentation for NCHW image batches, vectorised over the batch.

Every transform takes a batch ``x`` of shape ``(N, C, H, W)`` (or one image ``(C, H, W)``,
returned with the same rank) and returns a new array of the same dtype; the input is never
modified. Random parameters are drawn per image, all at once, and applied with NumPy
broadcasting or a single gather: no Python loop over the images.

Randomness: ``seed=None`` draws from oxinet's shared generator (``oxinet.manual_seed``);
an int gives the transform its own generator, so a freshly built transform with the same
seed repeats the same draws. ``t(x, rng=g)`` draws from the Generator ``g`` instead.
Transforms that change values (rotation, brightness/contrast, colour shift, erasing with
random values) need float32/float64 images; flips and crops work for any dtype.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import numpy as np

from oxinet.data._rng import SeedSource

__all__ = [
    "Compose",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "RandomCrop",
    "RandomRotation",
    "ColorJitter",
    "RandomBrightness",
    "RandomContrast",
    "RandomColorShift",
    "RandomErasing",
    "Normalize",
    "Resize",
    "Pad",
]


def _batch(x: Any, who: str, need_float: bool = False) -> tuple[np.ndarray, bool]:
    """``x`` as an (N, C, H, W) array, and whether it was a single (C, H, W) image."""
    a = np.asarray(x)
    if a.ndim == 3:
        a, single = a[None], True
    elif a.ndim == 4:
        single = False
    else:
        raise ValueError(
            f"{who}: 'x' must be an image batch (N, C, H, W) or one image (C, H, W), got shape {a.shape}"
        )
    if need_float and a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{who}: 'x' must be a float32 or float64 image array, got dtype {a.dtype}")
    return a, single


def _unbatch(a: np.ndarray, single: bool) -> np.ndarray:
    return a[0] if single else a


def _prob(p, who: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{who}: 'p' must be in [0, 1], got {p}")
    return p


def _pair(v, name: str, who: str, low: float = 0.0) -> tuple[float, float]:
    """A scalar v gives (low-centred) (-v, v) / (1-v, 1+v) handled by the caller; a pair is kept."""
    if isinstance(v, numbers.Real):
        return float(v), float(v)
    v = tuple(float(t) for t in v)
    if len(v) != 2 or v[0] > v[1]:
        raise ValueError(f"{who}: '{name}' must be a number or a (min, max) pair, got {v}")
    return v


class Transform:
    """Base class: holds the seed; subclasses implement ``apply(x, rng)`` on an NCHW batch."""

    name = "Transform"
    need_float = False

    def __init__(self, seed=None):
        self._seed = SeedSource(seed, type(self).__name__)

    def manual_seed(self, seed) -> "Transform":
        """Restart this transform's own generator from ``seed``; returns self."""
        self._seed.reseed(seed, type(self).__name__)
        return self

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        a, single = _batch(x, type(self).__name__, self.need_float)
        g = self._seed.generator() if rng is None else rng
        return _unbatch(self.apply(a, g), single)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"

    def _repr_args(self) -> dict:
        return {}


class Compose:
    """Apply transforms in order: ``Compose([RandomCrop(28, padding=2), RandomHorizontalFlip()])``.

    ``rng=`` given to the call is passed on to every transform; otherwise each uses its own.
    Plain callables ``f(x)`` are accepted too.
    """

    def __init__(self, transforms: Sequence[Callable]):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: 'transforms[{i}]' is not callable ({type(t).__name__})")
        self.transforms = transforms

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng=rng) if (rng is not None and isinstance(t, (Transform, Compose))) else t(x)
        return x

    def manual_seed(self, seed: int) -> "Compose":
        """Reseed every member transform (member i gets a seed derived from ``seed`` and i)."""
        children = np.random.SeedSequence(seed).spawn(len(self.transforms))
        for t, s in zip(self.transforms, children):
            if hasattr(t, "manual_seed"):
                t.manual_seed(s)
        return self

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (along W) with probability ``p``."""

    def __init__(self, p: float = 0.5, seed=None):
        super().__init__(seed)
        self.p = _prob(p, "RandomHorizontalFlip")

    def apply(self, x, rng):
        flip = rng.random(x.shape[0]) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def _repr_args(self):
        return {"p": self.p}


class RandomVerticalFlip(Transform):
    """Mirror each image top-bottom (along H) with probability ``p``."""

    def __init__(self, p: float = 0.5, seed=None):
        super().__init__(seed)
        self.p = _prob(p, "RandomVerticalFlip")

    def apply(self, x, rng):
        flip = rng.random(x.shape[0]) < self.p
        return np.where(flip[:, None, None, None], x[:, :, ::-1, :], x)

    def _repr_args(self):
        return {"p": self.p}


def _size2(size, name: str, who: str) -> tuple[int, int]:
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{who}: '{name}' must be a positive int or an (h, w) pair, got {size}")
    return size


class RandomCrop(Transform):
    """Crop a random ``size`` window from each image after padding its borders.

    Args:
        size: output ``(h, w)`` (or one int for a square).
        padding: pixels added before cropping: one int for every side, ``(pad_w, pad_h)``
            (left/right, top/bottom) or ``(left, top, right, bottom)``, as torchvision.
        fill: the value of padded pixels for ``padding_mode='constant'``.
        padding_mode: ``'constant'``, ``'edge'`` or ``'reflect'`` (as ``numpy.pad``).
    """

    def __init__(self, size, padding=0, fill: float = 0.0, padding_mode: str = "constant", seed=None):
        super().__init__(seed)
        who = "RandomCrop"
        self.size = _size2(size, "size", who)
        if isinstance(padding, numbers.Integral):
            padding = (int(padding),) * 4
        padding = tuple(int(p) for p in padding)
        if len(padding) == 2:
            padding = (padding[0], padding[1], padding[0], padding[1])
        if len(padding) != 4 or min(padding) < 0:
            raise ValueError(f"{who}: 'padding' must be >= 0 and have 1, 2 or 4 entries, got {padding}")
        if padding_mode not in ("constant", "edge", "reflect"):
            raise ValueError(f"{who}: 'padding_mode' must be 'constant', 'edge' or 'reflect', got {padding_mode!r}")
        self.padding = padding  # left, top, right, bottom
        self.fill = fill
        self.padding_mode = padding_mode

    def apply(self, x, rng):
        left, top, right, bottom = self.padding
        if any(self.padding):
            pads = ((0, 0), (0, 0), (top, bottom), (left, right))
            if self.padding_mode == "constant":
                xp = np.pad(x, pads, mode="constant", constant_values=self.fill)
            else:
                xp = np.pad(x, pads, mode=self.padding_mode)
        else:
            xp = x
        n, _, hp, wp = xp.shape
        h, w = self.size
        if h > hp or w > wp:
            raise ValueError(
                f"RandomCrop: crop size {(h, w)} is larger than the padded image {(hp, wp)} "
                f"(input shape {x.shape}, padding {self.padding})"
            )
        oy = rng.integers(0, hp - h + 1, size=n)
        ox = rng.integers(0, wp - w + 1, size=n)
        win = np.lib.stride_tricks.sliding_window_view(xp, (h, w), axis=(2, 3))
        # advanced indices around a slice: the batch axis comes first -> (N, C, h, w)
        return win[np.arange(n), :, oy, ox]

    def _repr_args(self):
        return {"size": self.size, "padding": self.padding, "padding_mode": self.padding_mode}


class RandomRotation(Transform):
    """Rotate each image by an angle drawn uniformly from ``degrees`` (counter-clockwise
    for positive angles, as torchvision) about its centre.

    Args:
        degrees: ``d`` for ``[-d, d]`` or a ``(min, max)`` pair, in degrees.
        interpolation: ``'bilinear'`` (default) or ``'nearest'``.
        fill: value of pixels that come from outside the image.

    Implemented with one index map per image (inverse rotation of the output grid) and a
    gather from the image padded by one ``fill`` pixel, so no per-image loop.
    """

    need_float = True

    def __init__(self, degrees, interpolation: str = "bilinear", fill: float = 0.0, seed=None):
        super().__init__(seed)
        who = "RandomRotation"
        if isinstance(degrees, numbers.Real):
            if degrees < 0:
                raise ValueError(f"{who}: 'degrees' as one number must be >= 0, got {degrees}")
            degrees = (-float(degrees), float(degrees))
        self.degrees = _pair(degrees, "degrees", who)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"{who}: 'interpolation' must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.interpolation = interpolation
        self.fill = float(fill)

    def apply(self, x, rng):
        n, c, h, w = x.shape
        theta = np.deg2rad(rng.uniform(self.degrees[0], self.degrees[1], size=n))
        return rotate(x, theta, self.interpolation, self.fill)

    def _repr_args(self):
        return {"degrees": self.degrees, "interpolation": self.interpolation, "fill": self.fill}


def rotate(x: np.ndarray, theta: np.ndarray, interpolation: str = "bilinear", fill: float = 0.0) -> np.ndarray:
    """Rotate each image of the NCHW float batch ``x`` by ``theta[i]`` radians
    (counter-clockwise) about its centre; pixels from outside the image get ``fill``.

    Each output pixel (y, x) samples the source at the inverse-rotated position; the
    image is padded by one ``fill`` pixel and the sample positions are clipped onto that
    border, so out-of-range samples read ``fill`` (bilinear blends towards it at the edge).
    Coordinates are computed in the image dtype; the gathers are flat ``np.take`` calls,
    done on chunks of images whose temporaries stay in the L2 cache (about 2x faster than
    one pass over a large batch, and than a loop over single images).
    """
    n, c, h, w = x.shape
    per_chunk = max(1, _ROTATE_CHUNK_ELEMENTS // max(1, c * h * w))
    if n > per_chunk:
        out = np.empty(x.shape, x.dtype)
        for i in range(0, n, per_chunk):
            out[i : i + per_chunk] = _rotate(x[i : i + per_chunk], theta[i : i + per_chunk], interpolation, fill)
        return out
    return _rotate(x, theta, interpolation, fill)


_ROTATE_CHUNK_ELEMENTS = 1 << 15


def _rotate(x: np.ndarray, theta: np.ndarray, interpolation: str, fill: float) -> np.ndarray:
    n, c, h, w = x.shape
    dt = x.dtype
    hp, wp = h + 2, w + 2
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    gy = (np.arange(h, dtype=dt) - dt.type(cy))[:, None]
    gx = (np.arange(w, dtype=dt) - dt.type(cx))[None, :]
    cos = np.cos(theta).astype(dt)[:, None, None]
    sin = np.sin(theta).astype(dt)[:, None, None]
    # source position of output pixel (dy, dx): R(-theta) in image axes (y down), +1 for the pad
    sx = dt.type(cx + 1.0) + cos * gx - sin * gy  # (N, H, W)
    sy = dt.type(cy + 1.0) + sin * gx + cos * gy
    xp = np.empty((n, c, hp, wp), dt)
    xp[...] = fill
    xp[:, :, 1:-1, 1:-1] = x
    xp = xp.reshape(-1)
    base = (np.arange(n * c, dtype=np.intp) * (hp * wp)).reshape(n, c, 1, 1)
    if interpolation == "nearest":
        yi = np.clip(np.floor(sy + dt.type(0.5)), 0, h + 1).astype(np.intp)
        xi = np.clip(np.floor(sx + dt.type(0.5)), 0, w + 1).astype(np.intp)
        return np.take(xp, base + (yi * wp + xi)[:, None])
    np.clip(sy, 0, h + 1, out=sy)
    np.clip(sx, 0, w + 1, out=sx)
    y0 = np.minimum(np.floor(sy), h)
    x0 = np.minimum(np.floor(sx), w)
    fy = (sy - y0)[:, None]  # (N, 1, H, W) weights, shared by the channels
    fx = (sx - x0)[:, None]
    i00 = base + (y0 * wp + x0).astype(np.intp)[:, None]
    top = np.take(xp, i00)
    d = np.take(xp, i00 + 1)
    d -= top
    d *= fx
    top += d
    i00 += wp
    bot = np.take(xp, i00)
    d = np.take(xp, i00 + 1)
    d -= bot
    d *= fx
    bot += d
    bot -= top
    bot *= fy
    top += bot
    return top


def _clip(out: np.ndarray, clip) -> np.ndarray:
    if clip is None:
        return out
    lo, hi = clip
    return np.clip(out, lo, hi, out=out)


def _factor_range(v, name: str, who: str) -> tuple[float, float]:
    if isinstance(v, numbers.Real):
        if v < 0:
            raise ValueError(f"{who}: '{name}' must be >= 0, got {v}")
        return max(0.0, 1.0 - float(v)), 1.0 + float(v)
    lo, hi = _pair(v, name, who)
    if lo < 0:
        raise ValueError(f"{who}: '{name}' factors must be >= 0, got ({lo}, {hi})")
    return lo, hi


class ColorJitter(Transform):
    """Random brightness and contrast per image, in that order (torchvision's definitions).

    * brightness: multiply the image by ``f ~ U[1 - b, 1 + b]`` (or ``U[min, max]``);
    * contrast: blend with the image's mean grey level, ``f * x + (1 - f) * mean`` with
      ``f ~ U[1 - c, 1 + c]``; the grey level uses ITU-R 601 weights for 3 channels and the
      plain mean otherwise.

    ``clip=(0.0, 1.0)`` clamps the result like torchvision does for float images; the
    default ``None`` leaves values unclamped (for standardised inputs).
    """

    need_float = True

    def __init__(self, brightness=0.0, contrast=0.0, clip=None, seed=None):
        super().__init__(seed)
        who = type(self).__name__
        self.brightness = _factor_range(brightness, "brightness", who)
        self.contrast = _factor_range(contrast, "contrast", who)
        self.clip = clip

    def apply(self, x, rng):
        n = x.shape[0]
        dt = x.dtype
        out = x
        if self.brightness != (1.0, 1.0):
            fb = rng.uniform(*self.brightness, size=n).astype(dt)
            out = out * fb[:, None, None, None]
        if self.contrast != (1.0, 1.0):
            fc = rng.uniform(*self.contrast, size=n).astype(dt)[:, None, None, None]
            if out.shape[1] == 3:
                grey = np.tensordot(np.asarray([0.299, 0.587, 0.114], dt), out, axes=([0], [1]))
                mean = grey.mean(axis=(1, 2))[:, None, None, None]
            else:
                mean = out.mean(axis=(1, 2, 3), keepdims=True)
            out = fc * out + (1 - fc) * mean
        if out is x:
            out = x.copy()
        return _clip(out.astype(dt, copy=False), self.clip)

    def _repr_args(self):
        return {"brightness": self.brightness, "contrast": self.contrast, "clip": self.clip}


class RandomBrightness(ColorJitter):
    """Multiply each image by a factor drawn from ``U[1 - b, 1 + b]`` (see :class:`ColorJitter`)."""

    def __init__(self, brightness=0.2, clip=None, seed=None):
        super().__init__(brightness=brightness, contrast=0.0, clip=clip, seed=seed)


class RandomContrast(ColorJitter):
    """Scale each image's contrast about its mean grey level (see :class:`ColorJitter`)."""

    def __init__(self, contrast=0.2, clip=None, seed=None):
        super().__init__(brightness=0.0, contrast=contrast, clip=clip, seed=seed)


class RandomColorShift(Transform):
    """Add a random offset per image and channel, ``U[-shift, shift]`` (the course's
    "colour shifting": change the R, G and B levels independently).

    ``shift`` is one number or one per channel. ``clip`` as in :class:`ColorJitter`.
    """

    need_float = True

    def __init__(self, shift=0.1, clip=None, seed=None):
        super().__init__(seed)
        s = np.atleast_1d(np.asarray(shift, dtype=np.float64))
        if s.ndim != 1 or (s < 0).any():
            raise ValueError(f"RandomColorShift: 'shift' must be >= 0 (one value or one per channel), got {shift}")
        self.shift = s
        self.clip = clip

    def apply(self, x, rng):
        n, c = x.shape[:2]
        if self.shift.size not in (1, c):
            raise ValueError(
                f"RandomColorShift: 'shift' has {self.shift.size} values but 'x' has {c} channels (shape {x.shape})"
            )
        off = rng.uniform(-1.0, 1.0, size=(n, c)) * self.shift
        out = x + off.astype(x.dtype)[:, :, None, None]
        return _clip(out, self.clip)

    def _repr_args(self):
        return {"shift": self.shift.tolist(), "clip": self.clip}


class RandomErasing(Transform):
    """Erase a random rectangle of each image with probability ``p`` (Zhong et al. 2017;
    torchvision's ``RandomErasing`` parameters).

    The rectangle's area is ``U[scale]`` times the image area and its aspect ratio ``h/w``
    is log-uniform in ``ratio``; up to 10 draws per image are tried until one fits, all
    drawn at once for the batch. ``value``: a number, one value per channel, or
    ``'random'`` for standard normal noise.
    """

    attempts = 10

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, seed=None):
        super().__init__(seed)
        who = "RandomErasing"
        self.p = _prob(p, who)
        self.scale = _pair(scale, "scale", who)
        self.ratio = _pair(ratio, "ratio", who)
        if not (0.0 <= self.scale[0] <= self.scale[1] <= 1.0):
            raise ValueError(f"{who}: 'scale' must satisfy 0 <= min <= max <= 1, got {self.scale}")
        if self.ratio[0] <= 0:
            raise ValueError(f"{who}: 'ratio' must be > 0, got {self.ratio}")
        if isinstance(value, str) and value != "random":
            raise ValueError(f"{who}: 'value' must be a number, per-channel values or 'random', got {value!r}")
        self.value = value
        self.need_float = isinstance(value, str)

    def boxes(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        """Draw the erased rectangles for a batch of ``shape``: (N, 4) int rows
        ``(top, left, height, width)``; height 0 means the image is left untouched."""
        n, _, h, w = shape
        k = self.attempts
        area = h * w * rng.uniform(*self.scale, size=(n, k))
        logr = rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(n, k))
        ar = np.exp(logr)
        eh = np.round(np.sqrt(area * ar)).astype(np.int64)
        ew = np.round(np.sqrt(area / ar)).astype(np.int64)
        ok = (eh >= 1) & (ew >= 1) & (eh < h) & (ew < w)
        first = np.argmax(ok, axis=1)
        found = ok[np.arange(n), first]
        apply = (rng.random(n) < self.p) & found
        eh = np.where(apply, eh[np.arange(n), first], 0)
        ew = np.where(apply, ew[np.arange(n), first], 0)
        u = rng.random((n, 2))
        top = np.floor(u[:, 0] * (h - eh + 1)).astype(np.int64)
        left = np.floor(u[:, 1] * (w - ew + 1)).astype(np.int64)
        return np.stack([top, left, eh, ew], axis=1)

    def apply(self, x, rng):
        n, c, h, w = x.shape
        b = self.boxes(x.shape, rng)
        rows = np.arange(h)[None, :]
        cols = np.arange(w)[None, :]
        in_r = (rows >= b[:, :1]) & (rows < b[:, :1] + b[:, 2:3])  # (N, H)
        in_c = (cols >= b[:, 1:2]) & (cols < b[:, 1:2] + b[:, 3:4])  # (N, W)
        mask = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # (N, 1, H, W)
        if isinstance(self.value, str):
            fillv = rng.standard_normal(x.shape).astype(x.dtype)
        else:
            v = np.asarray(self.value, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
            if v.ndim == 1:
                if v.size not in (1, c):
                    raise ValueError(
                        f"RandomErasing: 'value' has {v.size} entries but 'x' has {c} channels (shape {x.shape})"
                    )
                v = v[None, :, None, None]
            fillv = v.astype(x.dtype)
        return np.where(mask, fillv, x)

    def _repr_args(self):
        return {"p": self.p, "scale": self.scale, "ratio": self.ratio, "value": self.value}


class Normalize(Transform):
    """Subtract a per-channel ``mean`` and divide by ``std`` (deterministic)."""

    need_float = True

    def __init__(self, mean, std):
        super().__init__(0)
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if (self.std == 0).any():
            raise ValueError(f"Normalize: 'std' must be non-zero, got {self.std.tolist()}")

    def apply(self, x, rng):
        c = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: '{name}' has {v.size} values but 'x' has {c} channels (shape {x.shape})")
        m = self.mean.astype(x.dtype)[None, :, None, None] if self.mean.size > 1 else x.dtype.type(self.mean[0])
        s = self.std.astype(x.dtype)[None, :, None, None] if self.std.size > 1 else x.dtype.type(self.std[0])
        return (x - m) / s

    def _repr_args(self):
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


class Resize(Transform):
    """Resize every image to ``size`` (``(h, w)`` or one int for a square), with the
    semantics of ``torch.nn.functional.interpolate(mode='bilinear'|'nearest',
    align_corners=...)`` (no antialiasing). Deterministic.

    Runs :func:`oxinet.ops.interpolate` (the Rust kernel), e.g. the 8x8 digits to 32x32
    for LeNet-5.
    """

    need_float = True

    def __init__(self, size, interpolation: str = "bilinear", align_corners: bool = False):
        super().__init__(0)
        self.size = _size2(size, "size", "Resize")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"Resize: 'interpolation' must be 'bilinear' or 'nearest', got {interpolation!r}")
        if interpolation == "nearest" and align_corners:
            raise ValueError("Resize: 'align_corners' only applies to bilinear interpolation")
        self.interpolation = interpolation
        self.align_corners = bool(align_corners)

    def apply(self, x, rng):
        from oxinet.ops import interpolate

        align = self.align_corners if self.interpolation == "bilinear" else None
        return interpolate(x, size=self.size, mode=self.interpolation, align_corners=align)

    def _repr_args(self):
        return {"size": self.size, "interpolation": self.interpolation, "align_corners": self.align_corners}


class Pad(Transform):
    """Pad every image: ``padding`` is one int, ``(pad_w, pad_h)`` (left/right, top/bottom)
    or ``(left, top, right, bottom)`` as in torchvision; ``padding_mode`` as in
    :class:`RandomCrop`. Deterministic; works for any dtype."""

    def __init__(self, padding, fill: float = 0.0, padding_mode: str = "constant"):
        super().__init__(0)
        if isinstance(padding, numbers.Integral):
            padding = (int(padding),) * 4
        padding = tuple(int(p) for p in padding)
        if len(padding) == 2:
            padding = (padding[0], padding[1], padding[0], padding[1])
        if len(padding) != 4 or min(padding) < 0:
            raise ValueError(f"Pad: 'padding' must be >= 0 and have 1, 2 or 4 entries, got {padding}")
        if padding_mode not in ("constant", "edge", "reflect"):
            raise ValueError(f"Pad: 'padding_mode' must be 'constant', 'edge' or 'reflect', got {padding_mode!r}")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def apply(self, x, rng):
        left, top, right, bottom = self.padding
        pads = ((0, 0), (0, 0), (top, bottom), (left, right))
        if self.padding_mode == "constant":
            return np.pad(x, pads, mode="constant", constant_values=self.fill)
        return np.pad(x, pads, mode=self.padding_mode)

    def _repr_args(self):
        return {"padding": self.padding, "fill": self.fill, "padding_mode": self.padding_mode}
