"""Box geometry ops against brute-force NumPy loops (torchvision semantics)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import oxinet.ops as F


def brute_iou(a, b):
    out = np.zeros((len(a), len(b)), np.float64)
    for i in range(len(a)):
        for j in range(len(b)):
            iw = max(min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]), 0.0)
            ih = max(min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]), 0.0)
            inter = iw * ih
            aa = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
            ab = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            with np.errstate(divide="ignore", invalid="ignore"):
                out[i, j] = np.float64(inter) / np.float64(aa + ab - inter)
    return out


def brute_giou(a, b):
    out = np.zeros((len(a), len(b)))
    iou = brute_iou(a, b)
    for i in range(len(a)):
        for j in range(len(b)):
            ew = max(max(a[i, 2], b[j, 2]) - min(a[i, 0], b[j, 0]), 0)
            eh = max(max(a[i, 3], b[j, 3]) - min(a[i, 1], b[j, 1]), 0)
            c = ew * eh
            iw = max(min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]), 0.0)
            ih = max(min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]), 0.0)
            union = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1]) + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - iw * ih
            out[i, j] = iou[i, j] - (c - union) / c
    return out


def random_boxes(rng, n, degenerate=False):
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(-5 if degenerate else 0.5, 20, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


coord = st.integers(-3, 12).map(float)
box = st.tuples(coord, coord, coord, coord)


@settings(max_examples=60, deadline=None)
@given(st.lists(box, max_size=12), st.lists(box, max_size=12), st.sampled_from([np.float32, np.float64]))
def test_box_iou_matches_brute_force_including_degenerate(a, b, dtype):
    a = np.array(a, dtype).reshape(-1, 4)
    b = np.array(b, dtype).reshape(-1, 4)
    got = F.box_iou(a, b)
    assert got.dtype == dtype and got.shape == (len(a), len(b))
    np.testing.assert_allclose(got, brute_iou(a.astype(np.float64), b.astype(np.float64)), rtol=1e-6, atol=1e-7)


def test_box_iou_large_and_strided():
    rng = np.random.default_rng(0)
    a = random_boxes(rng, 130, degenerate=True).astype(np.float32)
    b = random_boxes(rng, 1000).astype(np.float32)
    got = F.box_iou(a[::2], b)
    lt = np.maximum(a[::2, None, :2], b[None, :, :2])
    rb = np.minimum(a[::2, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    ref = inter / (F.box_area(a[::2])[:, None] + F.box_area(b)[None] - inter)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


def test_box_iou_known_values_and_mixed_dtypes():
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6], [0, 0, 0, 0]], np.float64)
    got = F.box_iou(a, b)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got[0, :3], [1 / 7, 1.0, 0.0])
    assert got[0, 3] == 0.0
    assert np.isnan(F.box_iou(b[3:], b[3:])[0, 0])  # 0 / 0 as in torchvision


def test_empty_inputs():
    e = np.zeros((0, 4), np.float32)
    b = np.ones((3, 4), np.float32)
    assert F.box_iou(e, b).shape == (0, 3) and F.box_iou(e, b).dtype == np.float32
    assert F.box_iou(b, e).shape == (3, 0)
    assert F.generalized_box_iou(e, b).shape == (0, 3)
    assert F.box_area(e).shape == (0,)
    assert F.box_convert(e, "xyxy", "cxcywh").shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generalized_and_elementwise(dtype):
    rng = np.random.default_rng(1)
    a = random_boxes(rng, 9).astype(dtype)
    b = random_boxes(rng, 7).astype(dtype)
    g = F.generalized_box_iou(a, b)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, brute_giou(a.astype(np.float64), b.astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert (g <= 1 + 1e-6).all() and (g >= -1 - 1e-6).all()
    e = F.elementwise_box_iou(a[:7], b)
    np.testing.assert_allclose(e, np.diag(brute_iou(a[:7].astype(np.float64), b.astype(np.float64))), rtol=1e-5)
    eg = F.elementwise_generalized_box_iou(a[:7], b)
    np.testing.assert_allclose(eg, np.diag(g[:7]), rtol=1e-5, atol=1e-6)
    # Disjoint boxes far apart: GIoU tends to -1.
    far = F.generalized_box_iou(np.array([[0, 0, 1, 1.0]]), np.array([[100, 100, 101, 101.0]]))
    assert -1 < far[0, 0] < -0.99


def test_box_area_and_convert_round_trip():
    b = np.array([[1.0, 2.0, 4.0, 8.0], [3.0, 3.0, 1.0, 1.0]])
    np.testing.assert_allclose(F.box_area(b), [18.0, 4.0])  # inverted box: area kept as computed
    np.testing.assert_allclose(F.box_convert(b[:1], "xyxy", "xywh"), [[1, 2, 3, 6]])
    np.testing.assert_allclose(F.box_convert(b[:1], "xyxy", "cxcywh"), [[2.5, 5, 3, 6]])
    np.testing.assert_allclose(F.box_convert([[2.5, 5, 3, 6.0]], "cxcywh", "xywh"), [[1, 2, 3, 6]])
    rng = np.random.default_rng(2)
    x = random_boxes(rng, 20)
    for f1 in ("xyxy", "xywh", "cxcywh"):
        for f2 in ("xyxy", "xywh", "cxcywh"):
            y = F.box_convert(F.box_convert(x, "xyxy", f1), f1, f2)
            np.testing.assert_allclose(F.box_convert(y, f2, "xyxy"), x, rtol=1e-12, atol=1e-12)
    assert F.box_convert(x.astype(np.float32), "xyxy", "xywh").dtype == np.float32


def test_clip_and_remove_small():
    b = np.array([[-5.0, -1.0, 20.0, 7.0], [2.0, 3.0, 4.0, 3.5]], np.float32)
    c = F.clip_boxes_to_image(b, (6, 10))
    np.testing.assert_array_equal(c, [[0, 0, 10, 6], [2, 3, 4, 3.5]])
    assert c.dtype == np.float32 and b[0, 0] == -5.0
    np.testing.assert_array_equal(F.remove_small_boxes(b, 1.0), [0])
    assert F.remove_small_boxes(b, 1.0).dtype == np.int64


def test_bad_inputs_name_the_argument():
    good = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="'boxes1'"):
        F.box_iou(np.zeros((2, 5), np.float32), good)
    with pytest.raises(ValueError, match="'boxes2'"):
        F.box_iou(good, np.zeros((4,), np.float32))
    with pytest.raises(TypeError, match="'boxes1'"):
        F.box_iou(np.zeros((2, 4), np.int32), good)
    with pytest.raises(ValueError, match="'in_fmt'"):
        F.box_convert(good, "xyzw", "xyxy")
    with pytest.raises(ValueError, match="'out_fmt'"):
        F.box_convert(good, "xyxy", "yxyx")
    with pytest.raises(ValueError, match="'boxes2'"):
        F.elementwise_box_iou(good, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="'size'"):
        F.clip_boxes_to_image(good, 5)


def test_box_iou_out():
    rng = np.random.default_rng(9)
    a = random_boxes(rng, 5).astype(np.float32)
    b = random_boxes(rng, 6).astype(np.float32)
    out = np.full((5, 6), np.nan, np.float32)
    r = F.box_iou(a, b, out=out)
    assert r is out
    np.testing.assert_array_equal(out, F.box_iou(a, b))
    with pytest.raises(ValueError, match="'out'"):
        F.box_iou(a, b, out=np.empty((6, 5), np.float32))
    with pytest.raises(TypeError, match="'out'"):
        F.box_iou(a, b, out=np.empty((5, 6), np.float64))
    with pytest.raises(ValueError, match="'out'"):
        F.box_iou(a, b, out=np.empty((6, 5), np.float32).T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_iou_streaming_sized_output(dtype):
    # Outputs above 24 MB take the streaming-store path; odd widths exercise head/tail.
    rng = np.random.default_rng(10)
    n, m = (2600, 2601) if dtype == np.float32 else (1800, 1801)
    a = random_boxes(rng, n, degenerate=True).astype(dtype)
    b = random_boxes(rng, m, degenerate=True).astype(dtype)
    got = F.box_iou(a, b)
    rows = np.r_[0:3, n // 2, n - 3:n]
    np.testing.assert_array_equal(got[rows], F.box_iou(a[rows], b))
    np.testing.assert_allclose(got[rows], brute_iou(a[rows].astype(np.float64), b.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_generalized_box_iou_backward_gradcheck():
    from helpers import check_grad, random_projection

    rng = np.random.default_rng(11)
    # Overlapping, disjoint and nested pairs; continuous coordinates avoid min/max ties.
    a = random_boxes(rng, 4) + rng.uniform(0, 0.1, (4, 4))
    b = np.concatenate([a[:2] + rng.uniform(-3, 3, (2, 4)), random_boxes(rng, 3)])
    w = random_projection((4, 5), seed=3)
    ga, gb = F.generalized_box_iou_backward(w, a, b)
    assert ga.shape == a.shape and gb.shape == b.shape
    check_grad(lambda: np.sum(w * F.generalized_box_iou(a, b)), a, ga)
    check_grad(lambda: np.sum(w * F.generalized_box_iou(a, b)), b, gb)
    we = random_projection((4,), seed=4)
    ea, eb = F.elementwise_generalized_box_iou_backward(we, a, b[:4])
    check_grad(lambda: np.sum(we * F.elementwise_generalized_box_iou(a, b[:4])), a, ea)
    bb = b[:4].copy()
    check_grad(lambda: np.sum(we * F.elementwise_generalized_box_iou(a, bb)), bb, eb)
    with pytest.raises(ValueError, match="'grad_output'"):
        F.generalized_box_iou_backward(np.zeros((5, 4)), a, b)


# --- the fused Rust generalized_box_iou against the NumPy broadcast formula it replaced
# (same operation order: equal up to the last bit on ordinary boxes), degenerate boxes,
# NaN, row lengths around the SIMD widths, and 1 vs 2 threads.

def _numpy_giou(a, b):
    from oxinet.ops.boxes import _giou

    return _giou(a[:, None, :], b[None, :, :])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,m", [(1, 1), (3, 15), (5, 16), (7, 17), (33, 130), (2, 1000)])
def test_fused_giou_matches_the_numpy_formula(dtype, n, m):
    rng = np.random.default_rng(n * 1000 + m)
    a = random_boxes(rng, n).astype(dtype)
    b = random_boxes(rng, m).astype(dtype)
    b[::5] = b[::5, [2, 3, 0, 1]]  # some inverted boxes
    a[0] = [3, 3, 3, 3]  # zero area
    with np.errstate(all="ignore"):
        want = _numpy_giou(a, b)
    got = F.generalized_box_iou(a, b)
    assert got.dtype == dtype and got.shape == (n, m)
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)
    assert np.array_equal(np.isnan(got), np.isnan(want))


def test_fused_giou_nan_identical_and_point_boxes():
    a = np.array([[0, 0, 2, 2], [np.nan, 0, 1, 1], [1, 1, 1, 1]], np.float32)
    b = np.array([[0, 0, 2, 2], [1, 1, 1, 1], [5, 5, 6, 6]], np.float32)
    g = F.generalized_box_iou(a, b)
    with np.errstate(all="ignore"):
        want = _numpy_giou(a, b)
    assert np.isnan(g[1]).all()
    assert g[0, 0] == 1.0
    assert np.array_equal(np.isnan(g), np.isnan(want))
    np.testing.assert_allclose(g[~np.isnan(g)], want[~np.isnan(want)], rtol=1e-6)


def test_fused_giou_does_not_depend_on_threads():
    import oxinet

    rng = np.random.default_rng(9)
    a, b = random_boxes(rng, 300).astype(np.float32), random_boxes(rng, 301).astype(np.float32)
    before = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        g1 = F.generalized_box_iou(a, b)
        oxinet.set_num_threads(2)
        g2 = F.generalized_box_iou(a, b)
    finally:
        oxinet.set_num_threads(before)
    np.testing.assert_array_equal(g1, g2)
