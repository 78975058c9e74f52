"""A seeded synthetic detection/segmentation set: images of circles, squares and triangles
with their bounding boxes, class labels and per-pixel masks."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from oxinet.data._rng import make_generator

__all__ = ["Shapes", "make_shapes", "SHAPE_CLASSES"]

SHAPE_CLASSES = ("circle", "square", "triangle")


@dataclass
class Shapes:
    """The output of :func:`make_shapes`.

    Attributes:
        images: float32 ``(N, C, H, W)`` in [0, 1].
        boxes: list of N float32 arrays ``(k_i, 4)``, pixel-edge ``(x1, y1, x2, y2)``
            (torchvision's xyxy): the tight box of the object's mask, so pixel columns
            ``x1 .. x2-1`` and rows ``y1 .. y2-1`` contain it.
        labels: list of N int64 arrays ``(k_i,)``, indices into :attr:`class_names`.
        masks: int64 ``(N, H, W)`` semantic masks: 0 background, ``label + 1`` on objects.
        instance_masks: list of N bool arrays ``(k_i, H, W)``, one per object.
        class_names: ``("circle", "square", "triangle")``.

    ``len(shapes)`` is N; ``shapes[i]`` is ``(image, target)`` with target a dict of
    ``boxes``, ``labels``, ``masks`` (instance masks) as torchvision's detection datasets give;
    batch them with ``DataLoader(shapes, collate_fn=detection_collate)``.
    """

    images: np.ndarray
    boxes: list
    labels: list
    masks: np.ndarray
    instance_masks: list
    class_names: tuple = field(default=SHAPE_CLASSES)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        k = sum(len(l) for l in self.labels)
        return f"Shapes({len(self)} images {self.images.shape[1:]}, {k} objects, classes {self.class_names})"

    def __getitem__(self, i: int):
        return self.images[i], {
            "boxes": self.boxes[i],
            "labels": self.labels[i],
            "masks": self.instance_masks[i],
        }

    def padded(self, max_objects: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and labels as dense arrays ``(N, M, 4)`` float32 and ``(N, M)`` int64,
        padded with -1 (``M`` = the largest object count unless given)."""
        m = max((len(b) for b in self.boxes), default=0) if max_objects is None else int(max_objects)
        bx = np.full((len(self), m, 4), -1.0, np.float32)
        lb = np.full((len(self), m), -1, np.int64)
        for i, (b, l) in enumerate(zip(self.boxes, self.labels)):
            k = min(len(b), m)
            bx[i, :k] = b[:k]
            lb[i, :k] = l[:k]
        return bx, lb

    def segmentation(self):
        """An :class:`~oxinet.data.ArrayDataset` of ``(images, masks)`` for segmentation."""
        from oxinet.data.loader import ArrayDataset

        return ArrayDataset(self.images, self.masks)


def _shape_mask(kind: int, cy: float, cx: float, s: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Pixels whose centre lies inside the shape of size ``s`` centred at (cy, cx)."""
    py, px = yy + 0.5, xx + 0.5
    h = s / 2.0
    if kind == 0:  # circle of diameter s
        return (py - cy) ** 2 + (px - cx) ** 2 <= h * h
    if kind == 1:  # axis-aligned square of side s
        return (np.abs(py - cy) <= h) & (np.abs(px - cx) <= h)
    # upright isosceles triangle: apex (cx, cy - h), base from (cx - h, cy + h) to (cx + h, cy + h)
    below_apex = py <= cy + h
    rel = (py - (cy - h)) / s  # 0 at the apex, 1 at the base
    return below_apex & (rel >= 0) & (np.abs(px - cx) <= rel * h)


def make_shapes(
    n_images: int = 256,
    image_size: int = 32,
    max_objects: int = 3,
    min_objects: int = 1,
    object_size: tuple = (6, 14),
    channels: int = 3,
    noise: float = 0.05,
    seed=0,
) -> Shapes:
    """Generate images containing non-overlapping circles, squares and triangles.

    Generating process, per image: the background is a dark uniform colour (each channel
    ``U[0, 0.35]``); ``k ~ U{min_objects..max_objects}`` objects are placed one by one,
    each with a class drawn uniformly, a size ``s ~ U{object_size}`` pixels and a centre
    drawn so the shape lies inside the image; a placement whose box (grown by one pixel)
    touches an earlier object is redrawn (up to 50 times, then the object is dropped, so
    an image may hold fewer objects than drawn). Objects are painted in a bright colour
    (each channel ``U[0.55, 1]``); a pixel belongs to an object when its centre lies inside
    the shape. Finally ``N(0, noise^2)`` noise is added and values are clipped to [0, 1].
    Boxes are the tight boxes of the painted masks, so masks and boxes always agree.

    Returns a :class:`Shapes` with images, boxes, labels, semantic masks and instance masks.
    """
    who = "make_shapes"

    def _int(v, name, lo):
        try:
            v = operator.index(v)
        except TypeError:
            raise TypeError(f"{who}: '{name}' must be an int, got {type(v).__name__}") from None
        if v < lo:
            raise ValueError(f"{who}: '{name}' must be >= {lo}, got {v}")
        return v

    n = _int(n_images, "n_images", 1)
    size = _int(image_size, "image_size", 8)
    kmax = _int(max_objects, "max_objects", 1)
    kmin = _int(min_objects, "min_objects", 0)
    c = _int(channels, "channels", 1)
    if kmin > kmax:
        raise ValueError(f"{who}: 'min_objects' ({kmin}) must be <= 'max_objects' ({kmax})")
    smin, smax = (int(v) for v in object_size)
    if not 3 <= smin <= smax <= size:
        raise ValueError(
            f"{who}: 'object_size' must satisfy 3 <= min <= max <= image_size ({size}), got {object_size}"
        )
    if noise < 0:
        raise ValueError(f"{who}: 'noise' must be >= 0, got {noise}")
    rng = make_generator(seed, who)

    yy, xx = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    images = np.empty((n, c, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int64)
    all_boxes, all_labels, all_inst = [], [], []
    for i in range(n):
        bg = rng.uniform(0.0, 0.35, size=c)
        img = np.broadcast_to(bg[:, None, None], (c, size, size)).copy()
        occupied = np.zeros((size, size), bool)
        boxes, labels, inst = [], [], []
        for _ in range(int(rng.integers(kmin, kmax + 1))):
            kind = int(rng.integers(0, 3))
            s = int(rng.integers(smin, smax + 1))
            for _attempt in range(50):
                cy = rng.uniform(s / 2.0, size - s / 2.0)
                cx = rng.uniform(s / 2.0, size - s / 2.0)
                m = _shape_mask(kind, cy, cx, s, yy, xx)
                if not m.any():
                    continue
                rows = np.flatnonzero(m.any(axis=1))
                cols = np.flatnonzero(m.any(axis=0))
                y1, y2, x1, x2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
                if occupied[max(y1 - 1, 0) : y2 + 1, max(x1 - 1, 0) : x2 + 1].any():
                    continue
                occupied |= m
                colour = rng.uniform(0.55, 1.0, size=c)
                img[:, m] = colour[:, None]
                masks[i][m] = kind + 1
                boxes.append((x1, y1, x2, y2))
                labels.append(kind)
                inst.append(m)
                break
        img += rng.standard_normal(img.shape) * noise
        images[i] = np.clip(img, 0.0, 1.0)
        all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        all_labels.append(np.asarray(labels, np.int64))
        all_inst.append(np.asarray(inst, bool).reshape(-1, size, size))
    return Shapes(images, all_boxes, all_labels, masks, all_inst)
