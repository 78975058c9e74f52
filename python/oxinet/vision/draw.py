"""Drawing and PNG output without plotting dependencies: boxes on images, simple line plots
and 2-D decision-boundary pictures rendered with NumPy, written with a small zlib PNG
encoder (matplotlib is used for plots when installed, never required)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (128, 128, 0), (0, 0, 128),
], np.uint8)


def to_uint8_image(image) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4}, float in [0, 1] or uint8 ->
    (H, W, 3 or 4) uint8 (channels-first input is detected by a leading dim of 1, 3 or 4
    when the last dim is not)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"to_uint8_image: 'image' must be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; got shape {np.shape(image)}")
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0)
        a = np.round(a * 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


def encode_png(image) -> bytes:
    """PNG bytes (8-bit RGB or RGBA, no interlace) of an image accepted by :func:`to_uint8_image`."""
    a = to_uint8_image(image)
    h, w, c = a.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, w * c)], axis=1).tobytes()

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if c == 4 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes written by :func:`encode_png` (8-bit RGB/RGBA, filter 0 rows, or any
    of the standard row filters) to an (H, W, C) uint8 array."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("decode_png: 'data' is not a PNG file")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError(f"decode_png: only 8-bit RGB/RGBA is supported, got depth {depth} colour type {ctype}")
            c = 3 if ctype == 2 else 4
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    out = np.zeros((h, w * c), np.int32)
    for r in range(h):
        f, line = raw[r, 0], raw[r, 1:].astype(np.int32)
        prev = out[r - 1] if r else np.zeros(w * c, np.int32)
        if f == 0:
            out[r] = line
        elif f == 2:
            out[r] = (line + prev) % 256
        else:
            cur = np.zeros(w * c, np.int32)
            for i in range(w * c):
                left = cur[i - c] if i >= c else 0
                up, ul = prev[i], (prev[i - c] if i >= c else 0)
                if f == 1:
                    pred = left
                elif f == 3:
                    pred = (left + up) // 2
                else:
                    p = left + up - ul
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                cur[i] = (line[i] + pred) % 256
            out[r] = cur
    return out.astype(np.uint8).reshape(h, w, c)


def save_png(path, image) -> str:
    """Write an image (see :func:`to_uint8_image`) as a PNG file; returns the path."""
    with open(path, "wb") as f:
        f.write(encode_png(image))
    return str(path)


def upscale(image, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, C) image by an integer factor."""
    a = np.asarray(image)
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)


def draw_rectangle(image: np.ndarray, box, color, thickness: int = 1) -> np.ndarray:
    """Draw the outline of ``box`` = (x1, y1, x2, y2) (pixel corners, x2/y2 exclusive) on an
    (H, W, 3) uint8 image in place; parts outside the image are clipped."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return image
    t = max(1, int(thickness))
    col = np.asarray(color, np.uint8)
    image[y1:min(y1 + t, y2), x1:x2] = col
    image[max(y2 - t, y1):y2, x1:x2] = col
    image[y1:y2, x1:min(x1 + t, x2)] = col
    image[y1:y2, max(x2 - t, x1):x2] = col
    return image


def draw_boxes(image, boxes, labels=None, scale: int = 1, thickness: int = 1) -> np.ndarray:
    """Copy of ``image`` (enlarged by ``scale``) with xyxy ``boxes`` drawn, one palette colour
    per label. Returns (H*scale, W*scale, 3) uint8."""
    img = upscale(to_uint8_image(image)[..., :3], scale) if scale > 1 else to_uint8_image(image)[..., :3].copy()
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    labels = np.zeros(len(boxes), int) if labels is None else np.asarray(labels).astype(int).reshape(-1)
    for b, lab in zip(boxes, labels):
        draw_rectangle(img, b * scale, PALETTE[lab % len(PALETTE)], thickness)
    return img


def _line(img, x0, y0, x1, y1, color):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.round(np.linspace(x0, x1, n)).astype(int)
    ys = np.round(np.linspace(y0, y1, n)).astype(int)
    ok = (xs >= 0) & (xs < img.shape[1]) & (ys >= 0) & (ys < img.shape[0])
    img[ys[ok], xs[ok]] = color


def _render_curves(curves: dict, logy: bool, size) -> np.ndarray:
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    m = 20
    vals = [np.asarray(v, float) for v in curves.values()]
    vals = [np.log10(np.maximum(v, 1e-12)) if logy else v for v in vals]
    finite = np.concatenate([v[np.isfinite(v)] for v in vals] + [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1
    n = max([len(v) for v in vals] + [1])
    _line(img, m, h - m, w - m, h - m, (0, 0, 0))
    _line(img, m, m, m, h - m, (0, 0, 0))
    for k, v in enumerate(vals):
        col = PALETTE[k % len(PALETTE)]
        img[4:12, m + 14 * k:m + 14 * k + 10] = col   # legend swatch in curve order
        xs = m + np.arange(len(v)) * (w - 2 * m) / max(n - 1, 1)
        ys = h - m - (np.where(np.isfinite(v), v, hi) - lo) / (hi - lo) * (h - 2 * m)
        for i in range(len(v) - 1):
            _line(img, xs[i], ys[i], xs[i + 1], ys[i + 1], col)
    img[:, -2:] = 128   # panel separator
    return img


def plot_curves(path, curves, title: str = "", xlabel: str = "", ylabel: str = "",
                logy: bool = False, size=(300, 420)) -> str:
    """Line plots as one PNG. ``curves`` is {name: y values} (one panel) or a list of panels
    ``(title, {name: y values})`` side by side. Uses matplotlib when installed; otherwise
    rasterises the lines with NumPy (colours from ``PALETTE`` in the order of the curves,
    a colour swatch per curve at the top, no text)."""
    panels = [(title, curves)] if isinstance(curves, dict) else list(curves)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, axes = plt.subplots(1, len(panels), figsize=(size[1] / 90 * len(panels), size[0] / 90), dpi=90,
                                 squeeze=False)
        for ax, (t, cs) in zip(axes[0], panels):
            for name, ys in cs.items():
                ax.plot(np.asarray(ys, float), label=name)
            if logy:
                ax.set_yscale("log")
            ax.set_title(t), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel), ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return str(path)
    return save_png(path, np.concatenate([_render_curves(cs, logy, size) for _, cs in panels], axis=1))


def decision_boundary_image(predict, X, y, resolution: int = 200, pad: float = 0.5) -> np.ndarray:
    """Picture of a 2-D binary classifier: the plane coloured by ``predict(points (k, 2)) ->
    labels (k,)`` with the data points ``X`` (m, 2), labels ``y`` drawn on top.
    Returns (resolution, resolution, 3) uint8."""
    X = np.asarray(X, float)
    y = np.asarray(y).reshape(-1).astype(int)
    x0, x1 = X[:, 0].min() - pad, X[:, 0].max() + pad
    y0, y1 = X[:, 1].min() - pad, X[:, 1].max() + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y1, y0, resolution))
    pred = np.asarray(predict(np.stack([gx.ravel(), gy.ravel()], 1))).reshape(resolution, resolution).astype(int)
    light = np.array([[250, 200, 200], [200, 210, 250]], np.uint8)
    dark = np.array([[200, 20, 20], [20, 40, 200]], np.uint8)
    img = light[pred.clip(0, 1)]
    px = np.round((X[:, 0] - x0) / (x1 - x0) * (resolution - 1)).astype(int)
    py = np.round((y1 - X[:, 1]) / (y1 - y0) * (resolution - 1)).astype(int)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            img[np.clip(py + dy, 0, resolution - 1), np.clip(px + dx, 0, resolution - 1)] = dark[y.clip(0, 1)]
    return img
