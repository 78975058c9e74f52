"""Augmentation transforms on NCHW batches: properties, references and seeding."""

import numpy as np
import pytest

from oxinet.data import (
    ColorJitter,
    Compose,
    DataLoader,
    Normalize,
    Pad,
    RandomBrightness,
    RandomColorShift,
    RandomContrast,
    RandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
)


def _imgs(n=6, c=3, h=7, w=9, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(dtype)


def test_flip_twice_is_identity_and_p_extremes():
    x = _imgs()
    for T, ref in ((RandomHorizontalFlip, x[..., ::-1]), (RandomVerticalFlip, x[:, :, ::-1, :])):
        f = T(p=1.0)
        np.testing.assert_array_equal(f(x), ref)
        np.testing.assert_array_equal(f(f(x)), x)
        np.testing.assert_array_equal(T(p=0.0)(x), x)


def test_flip_half_per_image_and_seeded():
    x = _imgs(n=64)
    out = RandomHorizontalFlip(p=0.5, seed=3)(x)
    flipped = np.array([np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x)])
    same = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped ^ same)  # each image is either mirrored or untouched
    assert 10 < flipped.sum() < 54
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.5, seed=3)(x), out)
    assert not np.array_equal(RandomHorizontalFlip(p=0.5, seed=4)(x), out)
    g = np.random.default_rng(11)
    a = RandomHorizontalFlip()(x, rng=g)
    np.testing.assert_array_equal(RandomHorizontalFlip()(x, rng=np.random.default_rng(11)), a)


def test_input_not_modified_and_single_image():
    x = _imgs()
    keep = x.copy()
    for t in (RandomHorizontalFlip(1.0), RandomCrop(5, padding=1), RandomRotation(10, seed=0),
              ColorJitter(0.3, 0.3, seed=0), RandomColorShift(0.1, seed=0), RandomErasing(1.0, seed=0)):
        out = t(x)
        assert out.shape[:2] == x.shape[:2] and out.dtype == x.dtype
        one = t(x[0])
        assert one.ndim == 3
    np.testing.assert_array_equal(x, keep)


def _crop_ref(xp, oy, ox, h, w):
    return np.stack([xp[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(len(xp))])


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_random_crop_matches_window_of_padded_image(mode):
    x = _imgs(n=5, h=6, w=8)
    t = RandomCrop((6, 8), padding=2, padding_mode=mode, fill=0.5, seed=1)
    out = t(x)
    assert out.shape == (5, 3, 6, 8)
    pads = ((0, 0), (0, 0), (2, 2), (2, 2))
    xp = np.pad(x, pads, mode="constant", constant_values=0.5) if mode == "constant" else np.pad(x, pads, mode=mode)
    # redraw the same offsets as the transform does (integers over [0, 4] for y then x)
    g = np.random.default_rng(1)
    oy = g.integers(0, 5, size=5)
    ox = g.integers(0, 5, size=5)
    np.testing.assert_array_equal(out, _crop_ref(xp, oy, ox, 6, 8))


def test_random_crop_shapes_and_identity():
    x = _imgs(h=10, w=12)
    np.testing.assert_array_equal(RandomCrop((10, 12))(x), x)
    assert RandomCrop(4, seed=0)(x).shape == (6, 3, 4, 4)
    assert RandomCrop((3, 5), padding=(1, 2), seed=0)(x).shape == (6, 3, 3, 5)
    # (pad_w, pad_h) like torchvision: a full-size crop of 10x12 padded by w=1, h=0
    # keeps the rows and shifts the columns by 0..2
    out = RandomCrop((10, 12), padding=(1, 0), seed=0)(x)
    xp = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1)))
    for i in range(len(x)):
        assert any(np.array_equal(out[i], xp[i, :, :, o : o + 12]) for o in range(3))
    assert RandomCrop(8, padding=(1, 2, 3, 4), seed=0)(x).shape == (6, 3, 8, 8)
    xi = np.arange(2 * 1 * 4 * 4).reshape(2, 1, 4, 4)  # integer images work too
    assert RandomCrop(2, seed=0)(xi).dtype == xi.dtype
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(20)(x)
    with pytest.raises(ValueError, match="'padding_mode'"):
        RandomCrop(4, padding_mode="wrap")


@pytest.mark.parametrize("interp", ["nearest", "bilinear"])
def test_rotation_by_90_equals_rot90_and_zero_is_identity(interp):
    x = _imgs(h=7, w=7, dtype=np.float64)
    r90 = RandomRotation((90, 90), interpolation=interp)(x)
    np.testing.assert_allclose(r90, np.rot90(x, 1, axes=(2, 3)), atol=1e-9)
    rm90 = RandomRotation((-90, -90), interpolation=interp)(x)
    np.testing.assert_allclose(rm90, np.rot90(x, -1, axes=(2, 3)), atol=1e-9)
    np.testing.assert_allclose(RandomRotation(0, interpolation=interp)(x), x, atol=1e-12)


def _rotate_ref(img, theta, fill):
    """Naive per-pixel bilinear rotation (counter-clockwise) about the centre."""
    c, h, w = img.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    out = np.empty_like(img)

    def px(y, x):
        if 0 <= y < h and 0 <= x < w:
            return img[:, y, x]
        return np.full(c, fill)

    for i in range(h):
        for j in range(w):
            dy, dx = i - cy, j - cx
            sx = cx + np.cos(theta) * dx - np.sin(theta) * dy
            sy = cy + np.sin(theta) * dx + np.cos(theta) * dy
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            fy, fx = sy - y0, sx - x0
            top = px(y0, x0) * (1 - fx) + px(y0, x0 + 1) * fx
            bot = px(y0 + 1, x0) * (1 - fx) + px(y0 + 1, x0 + 1) * fx
            out[:, i, j] = top * (1 - fy) + bot * fy
    return out


def test_rotation_small_angle_matches_naive_bilinear():
    x = _imgs(n=3, c=2, h=6, w=5, dtype=np.float64)
    t = RandomRotation(15, fill=0.25, seed=7)
    out = t(x)
    theta = np.deg2rad(np.random.default_rng(7).uniform(-15, 15, size=3))
    for i in range(3):
        np.testing.assert_allclose(out[i], _rotate_ref(x[i], theta[i], 0.25), atol=1e-12)
    assert RandomRotation(15)(x.astype(np.float32)).dtype == np.float32


def test_rotation_keeps_centre_and_rejects_ints():
    x = _imgs(h=9, w=9)
    out = RandomRotation(20, seed=0)(x)
    np.testing.assert_allclose(out[:, :, 4, 4], x[:, :, 4, 4], rtol=1e-6)
    with pytest.raises(TypeError, match="'x'"):
        RandomRotation(10)(np.zeros((1, 1, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="'interpolation'"):
        RandomRotation(10, interpolation="cubic")


def test_brightness_factor_per_image():
    x = _imgs() + 0.1
    out = RandomBrightness(0.3, seed=2)(x)
    ratio = (out / x).reshape(len(x), -1)
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-5)
    assert np.all((ratio[:, 0] >= 0.7 - 1e-6) & (ratio[:, 0] <= 1.3 + 1e-6))
    clipped = RandomBrightness((2.0, 2.0), clip=(0.0, 1.0))(x)
    assert clipped.max() <= 1.0


def test_contrast_keeps_grey_mean():
    x = _imgs(c=1)
    out = RandomContrast(0.5, seed=0)(x)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), rtol=1e-5)
    # factor 0 collapses each image to its mean grey (ITU-R 601 for RGB)
    rgb = _imgs(c=3, dtype=np.float64)
    flat = RandomContrast((0.0, 0.0))(rgb)
    grey = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).mean(axis=(1, 2))
    np.testing.assert_allclose(flat, np.broadcast_to(grey[:, None, None, None], rgb.shape), rtol=1e-12)


def test_color_shift_constant_per_channel():
    x = _imgs(n=10)
    out = RandomColorShift(0.2, seed=0)(x)
    d = (out - x).reshape(10, 3, -1)
    np.testing.assert_allclose(d, d[:, :, :1] * np.ones_like(d), atol=1e-6)
    assert np.abs(d).max() <= 0.2 + 1e-6
    out2 = RandomColorShift([0.0, 0.0, 0.5], seed=0)(x)
    np.testing.assert_array_equal(out2[:, :2], x[:, :2])
    with pytest.raises(ValueError, match="'shift' has 2 values but 'x' has 3 channels"):
        RandomColorShift([0.1, 0.1])(x)


def test_random_erasing_rectangle_area():
    x = _imgs(n=200, h=20, w=20) + 1.0  # no zeros in the images
    t = RandomErasing(p=1.0, scale=(0.05, 0.2), ratio=(0.5, 2.0), value=0.0, seed=5)
    out = t(x)
    erased = out[:, 0] == 0
    assert np.all((out == 0) == erased[:, None])  # same rectangle in every channel
    area = erased.reshape(200, -1).mean(1)
    n_erased = (area > 0).sum()
    assert n_erased >= 190  # a fitting rectangle is found almost always
    a = area[area > 0]
    # rounding the sides moves the area a little beyond [0.05, 0.2]
    assert a.min() >= 0.03 and a.max() <= 0.26
    for i in np.flatnonzero(area > 0)[:20]:  # the erased set is a filled rectangle
        r, c = np.nonzero(erased[i])
        assert erased[i, r.min() : r.max() + 1, c.min() : c.max() + 1].all()
        assert len(r) == (r.max() - r.min() + 1) * (c.max() - c.min() + 1)
    np.testing.assert_array_equal(RandomErasing(p=0.0)(x), x)
    np.testing.assert_array_equal(RandomErasing(p=1.0, scale=(0.05, 0.2), ratio=(0.5, 2.0), seed=5)(x), out)
    per_channel = RandomErasing(p=1.0, value=[7.0, 8.0, 9.0], seed=0)(x)
    assert set(np.unique(per_channel[:, 2][per_channel[:, 2] > 2])) == {9.0}
    noisy = RandomErasing(p=1.0, value="random", seed=0)(x)
    assert (noisy < 0).any()


def test_compose_order_seeding_and_loader():
    x = _imgs(n=16)
    def build(seed):
        return Compose([RandomCrop(5, padding=1), RandomHorizontalFlip(), ColorJitter(0.2, 0.2)]).manual_seed(seed)
    a = build(0)(x)
    np.testing.assert_array_equal(build(0)(x), a)
    assert not np.array_equal(build(1)(x), a)
    assert a.shape == (16, 3, 5, 5)
    seq = Compose([lambda z: z + 1, lambda z: z * 2])
    np.testing.assert_array_equal(seq(x), (x + 1) * 2)
    g1 = Compose([RandomHorizontalFlip(), RandomVerticalFlip()])(x, rng=np.random.default_rng(0))
    g2 = Compose([RandomHorizontalFlip(), RandomVerticalFlip()])(x, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(g1, g2)
    y = np.arange(16)
    batches = list(DataLoader((x, y), batch_size=8, transform=build(0)))
    assert batches[0][0].shape == (8, 3, 5, 5)
    with pytest.raises(TypeError, match="'transforms\\[1\\]'"):
        Compose([RandomHorizontalFlip(), 3])


def test_normalize_and_bad_inputs():
    x = _imgs()
    m, s = [0.5, 0.4, 0.3], [0.2, 0.3, 0.4]
    ref = (x - np.array(m, np.float32)[:, None, None]) / np.array(s, np.float32)[:, None, None]
    np.testing.assert_allclose(Normalize(m, s)(x), ref, rtol=1e-6)
    with pytest.raises(ValueError, match="'x' must be an image batch"):
        RandomHorizontalFlip()(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="'p'"):
        RandomVerticalFlip(p=1.5)
    with pytest.raises(ValueError, match="'std'"):
        Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match="'scale'"):
        RandomErasing(scale=(0.5, 2.0))


@pytest.mark.parametrize("interp", ["nearest", "bilinear"])
def test_rotation_in_chunks_equals_one_image_at_a_time(interp):
    from oxinet.data.transforms import rotate

    x = _imgs(n=37, c=3, h=32, w=32)  # more than one chunk of images
    theta = np.deg2rad(np.random.default_rng(2).uniform(-30, 30, size=37))
    out = rotate(x, theta, interp, 0.5)
    for i in range(37):
        np.testing.assert_array_equal(out[i : i + 1], rotate(x[i : i + 1], theta[i : i + 1], interp, 0.5))


def _interp_ref(x, size, mode, align_corners):
    """Naive per-pixel resize following torch.nn.functional.interpolate's index formulas."""
    n, c, h, w = x.shape
    ho, wo = size

    def src(d, n_in, n_out):
        if mode == "nearest":
            return min(int(np.floor(d * n_in / n_out)), n_in - 1), None, 0.0
        if align_corners:
            r = d * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            r = max((d + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(np.floor(r)), n_in - 1)
        return i0, min(i0 + 1, n_in - 1), r - i0

    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        y0, y1, ly = src(i, h, ho)
        for j in range(wo):
            x0, x1, lx = src(j, w, wo)
            if mode == "nearest":
                out[:, :, i, j] = x[:, :, y0, x0]
            else:
                out[:, :, i, j] = ((1 - ly) * ((1 - lx) * x[:, :, y0, x0] + lx * x[:, :, y0, x1])
                                   + ly * ((1 - lx) * x[:, :, y1, x0] + lx * x[:, :, y1, x1]))
    return out


@pytest.mark.parametrize("mode, ac", [("bilinear", False), ("bilinear", True), ("nearest", False)])
@pytest.mark.parametrize("size", [(32, 32), (5, 3), (8, 8), (1, 4)])
def test_resize_matches_interpolate_formulas(mode, ac, size):
    x = _imgs(n=3, c=2, h=8, w=6, dtype=np.float64)
    out = Resize(size, interpolation=mode, align_corners=ac)(x)
    assert out.shape == (3, 2) + size and out.dtype == np.float64
    np.testing.assert_allclose(out, _interp_ref(x, size, mode, ac), atol=1e-12)


def test_resize_known_values_and_digits_upscale():
    row = np.array([[[[0.0, 1.0]]]], np.float32)
    np.testing.assert_allclose(Resize((1, 4))(row)[0, 0, 0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(Resize((1, 4), align_corners=True)(row)[0, 0, 0], [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_array_equal(Resize((1, 4), interpolation="nearest")(row)[0, 0, 0], [0, 0, 1, 1])
    from oxinet.data import load_digits

    x, _ = load_digits()
    up = Resize(32)(x[:10])
    assert up.shape == (10, 1, 32, 32) and up.dtype == np.float32
    assert up.min() >= 0.0 and up.max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="'size'"):
        Resize(0)


def test_pad():
    x = _imgs(n=2, h=3, w=4)
    out = Pad((1, 2, 3, 4), fill=0.5)(x)
    assert out.shape == (2, 3, 3 + 2 + 4, 4 + 1 + 3)
    np.testing.assert_array_equal(out[:, :, 2:5, 1:5], x)
    assert (out[:, :, :2] == 0.5).all()
    np.testing.assert_array_equal(Pad((2, 1))(x), np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2))))
    np.testing.assert_array_equal(Pad(1, padding_mode="edge")(x), np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge"))
