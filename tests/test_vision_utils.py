"""PNG writer/reader and drawing, column-layout helpers, segmentation metrics (F43)."""

import sys
import zlib

import numpy as np
import pytest

from oxinet.data import from_column_layout, to_column_layout
from oxinet.vision import draw
from oxinet.vision.segmentation import (
    dice_per_class, iou_per_class, mean_dice, mean_iou, pixel_accuracy, segmentation_confusion,
)


def test_png_roundtrip_rgb_gray_and_chw(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (7, 5, 3)).astype(np.uint8)
    data = draw.encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(draw.decode_png(data), img)
    gray = rng.random((4, 6))
    out = draw.decode_png(draw.encode_png(gray))
    np.testing.assert_array_equal(out[..., 0], np.round(gray * 255).astype(np.uint8))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    chw = rng.random((3, 4, 6)).astype(np.float32)
    path = draw.save_png(tmp_path / "x.png", chw)
    with open(path, "rb") as f:
        back = draw.decode_png(f.read())
    np.testing.assert_array_equal(back, np.round(np.moveaxis(chw, 0, -1) * 255).astype(np.uint8))


def test_png_crc_and_filters():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data = draw.encode_png(img)
    # IHDR chunk crc
    n = int.from_bytes(data[8:12], "big")
    body = data[12:16 + n]
    assert int.from_bytes(data[16 + n:20 + n], "big") == zlib.crc32(body)
    # a "Sub"-filtered row decodes too
    raw = bytearray()
    for r in range(2):
        row = img[r].reshape(-1).astype(int)
        sub = [(row[i] - (row[i - 3] if i >= 3 else 0)) % 256 for i in range(len(row))]
        raw += bytes([1] + sub)
    ihdr = data[8:8 + 12 + n]
    idat = zlib.compress(bytes(raw))
    chunk = len(idat).to_bytes(4, "big") + b"IDAT" + idat + zlib.crc32(b"IDAT" + idat).to_bytes(4, "big")
    png = data[:8] + ihdr + chunk + data[-12:]
    np.testing.assert_array_equal(draw.decode_png(png), img)


def test_draw_boxes():
    img = np.zeros((3, 10, 10), np.float32)
    out = draw.draw_boxes(img, [[2, 3, 6, 8]], [1], scale=2)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    col = draw.PALETTE[1]
    np.testing.assert_array_equal(out[6, 4:12], np.tile(col, (8, 1)))      # top edge, y1*2 = 6
    np.testing.assert_array_equal(out[15, 4:12], np.tile(col, (8, 1)))     # bottom edge, y2*2 - 1
    assert (out[8:14, 6:10] == 0).all()                                    # inside untouched
    # boxes partly outside are clipped, empty boxes ignored
    out = draw.draw_boxes(img, [[-5, -5, 3, 3], [4, 4, 4, 9]])
    assert out[0, 0].any() and not out[5:, 5:].any()


def test_plot_and_decision_boundary(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the built-in renderer, not matplotlib's
    p = draw.plot_curves(tmp_path / "c.png", [("a", {"x": [3, 2, 1], "y": [1, 1, 2]}), ("b", {"z": [1, 0]})])
    with open(p, "rb") as f:
        im = draw.decode_png(f.read())
    assert im.shape[2] == 3 and (im == draw.PALETTE[0]).all(-1).any()
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    img = draw.decision_boundary_image(lambda pts: (pts[:, 0] > 0.5).astype(int), X, [0, 1], resolution=20, pad=0.1)
    assert img.shape == (20, 20, 3)
    assert (img[10, 0] == [250, 200, 200]).all() and (img[10, -1] == [200, 210, 250]).all()


def test_column_layout_roundtrip():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)
    y = np.array([1, 0])
    X, Y = to_column_layout(x, y)
    assert X.shape == (6, 2) and Y.shape == (1, 2)
    np.testing.assert_array_equal(X[:, 1], x[1].ravel())
    np.testing.assert_array_equal(Y, [[1, 0]])
    xb, yb = from_column_layout(X, (1, 2, 3), Y)
    np.testing.assert_array_equal(xb, x)
    np.testing.assert_array_equal(yb, y)
    Xo, Yo = to_column_layout(x, np.eye(3)[[0, 2]])
    assert Yo.shape == (3, 2)
    assert from_column_layout(Xo, Y=Yo)[1].shape == (2, 3)
    with pytest.raises(ValueError, match="'y'"):
        to_column_layout(x, np.zeros(3))
    with pytest.raises(ValueError, match="'X'"):
        from_column_layout(np.zeros(3))
    with pytest.raises(ValueError, match="'shape'"):
        from_column_layout(X, (2, 2))


def _ref_iou(p, t, c):
    a, b = p == c, t == c
    u = (a | b).sum()
    return np.nan if u == 0 else (a & b).sum() / u


def test_segmentation_metrics_against_set_definitions():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, (4, 9, 9))
    p = np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 3, t.shape))
    p[p == 2] = 1          # class 2 never predicted
    assert pixel_accuracy(p, t) == pytest.approx((p == t).mean())
    iou = iou_per_class(p, t, 4)
    for c in range(3):
        assert iou[c] == pytest.approx(_ref_iou(p, t, c))
    assert np.isnan(iou[3])                          # absent from both
    dice = dice_per_class(p, t, 4)
    for c in range(3):
        a, b = p == c, t == c
        assert dice[c] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert mean_iou(p, t, 4) == pytest.approx(np.nanmean(iou))
    assert mean_dice(p, t, 4, ignore_background=True) == pytest.approx(np.nanmean(dice[1:]))
    cm = segmentation_confusion(p, t, 3)
    assert cm.sum() == t.size and cm[:, 2].sum() == 0
    with pytest.raises(ValueError, match="'target'"):
        pixel_accuracy(p, t[:2])
    with pytest.raises(TypeError, match="'pred'"):
        pixel_accuracy(p.astype(float), t)
    with pytest.raises(ValueError, match="'num_classes'"):
        segmentation_confusion(p, t, 2)
