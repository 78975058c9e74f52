"""The 8x8 handwritten digits shipped inside the package (works offline)."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["load_digits", "DIGITS_PATH"]

DIGITS_FILE = "digits.npz"


#: Where the bundled archive lives (inside the installed package).
DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files", DIGITS_FILE)


def load_digits(as_images: bool = True, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 handwritten digits (10 classes, 174-183 images each), bundled with oxinet.

    Data: the test set of the UCI "Optical Recognition of Handwritten Digits" data set by
    E. Alpaydin and C. Kaynak (1998; CC BY 4.0, see ``oxinet/data/files/LICENSE-digits.txt``).
    Each image counts the "on" pixels of 4x4 blocks of a 32x32 bitmap, so pixels are
    integers 0..16; the digits were written by 13 people.

    Args:
        as_images: ``True`` gives images of shape ``(1797, 1, 8, 8)`` (NCHW); ``False`` gives
            flattened rows ``(1797, 64)``.
        raw: return the stored uint8 counts 0..16 instead of float32 values ``count / 16``
            in [0, 1].

    Returns:
        ``(x, y)``: x float32 in [0, 1] (or uint8 with ``raw=True``), y int64 digits 0..9.
        The arrays are new on every call (safe to modify).
    """
    path = DIGITS_PATH
    if not os.path.exists(path):  # pragma: no cover - broken installation
        raise FileNotFoundError(
            f"load_digits: the bundled file {path} is missing; reinstall oxinet"
        )
    with np.load(path, allow_pickle=False) as f:
        images = f["images"]
        labels = f["labels"].astype(np.int64)
    x = images if raw else images.astype(np.float32) / np.float32(16.0)
    x = x.reshape(-1, 1, 8, 8) if as_images else x.reshape(-1, 64)
    return np.ascontiguousarray(x), labels
