"""RoIAlign / RoIPool against loop references of torchvision's algorithms, plus
finite-difference checks of both backward passes."""

import math

import numpy as np
import pytest

import oxinet.ops as F
from helpers import check_grad, random_projection


def _bilinear(plane, y, x):
    h, w = plane.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= h - 1:
        yl = yh = h - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= w - 1:
        xl = xh = w - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    hy, hx = 1 - ly, 1 - lx
    return hy * hx * plane[yl, xl] + hy * lx * plane[yl, xh] + ly * hx * plane[yh, xl] + ly * lx * plane[yh, xh]


def ref_roi_align(x, rois, ph, pw, scale, sr, aligned):
    k = rois.shape[0]
    out = np.zeros((k, x.shape[1], ph, pw))
    off = 0.5 if aligned else 0.0
    for r in range(k):
        n = int(rois[r, 0])
        sw, sh, ew, eh = (rois[r, 1:] * scale - off)
        rw, rh = ew - sw, eh - sh
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = sr if sr > 0 else math.ceil(rh / ph)
        gw = sr if sr > 0 else math.ceil(rw / pw)
        count = max(gh * gw, 1)
        for c in range(x.shape[1]):
            for i in range(ph):
                for j in range(pw):
                    acc = 0.0
                    for iy in range(max(gh, 0)):
                        y = sh + i * bh + (iy + 0.5) * bh / gh
                        for ix in range(max(gw, 0)):
                            xx = sw + j * bw + (ix + 0.5) * bw / gw
                            acc += _bilinear(x[n, c], y, xx)
                    out[r, c, i, j] = acc / count
    return out


def ref_roi_pool(x, rois, ph, pw, scale):
    k = rois.shape[0]
    h, w = x.shape[2:]
    out = np.zeros((k, x.shape[1], ph, pw))
    rnd = lambda v: int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)  # half away from zero
    for r in range(k):
        n = int(rois[r, 0])
        sw, sh, ew, eh = (rnd(v * scale) for v in rois[r, 1:])
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = rh / ph, rw / pw
        for i in range(ph):
            for j in range(pw):
                hs = min(max(math.floor(i * bh) + sh, 0), h)
                he = min(max(math.ceil((i + 1) * bh) + sh, 0), h)
                ws = min(max(math.floor(j * bw) + sw, 0), w)
                we = min(max(math.ceil((j + 1) * bw) + sw, 0), w)
                if he <= hs or we <= ws:
                    continue
                out[r, :, i, j] = x[n, :, hs:he, ws:we].max(axis=(1, 2))
    return out


ROIS = np.array([
    [0, 1.3, 0.7, 6.2, 5.9],
    [1, -2.0, -1.0, 3.0, 2.5],      # partly outside the image
    [1, 4.0, 3.0, 4.2, 3.1],        # tiny
    [0, 6.0, 5.0, 2.0, 1.0],        # inverted
    [1, 0.0, 0.0, 9.0, 7.0],        # whole image
    [0, 20.0, 20.0, 25.0, 25.0],    # entirely outside
])


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sr", [-1, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_align_matches_reference(aligned, sr, scale):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 9))
    got = F.roi_align(x, ROIS, (3, 2), spatial_scale=scale, sampling_ratio=sr, aligned=aligned)
    assert got.shape == (6, 3, 3, 2) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref_roi_align(x, ROIS, 3, 2, scale, sr, aligned), rtol=1e-12, atol=1e-12)
    got32 = F.roi_align(x.astype(np.float32), ROIS.astype(np.float32), (3, 2), scale, sr, aligned)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, got, rtol=1e-4, atol=1e-5)


def test_roi_align_constant_input_and_list_boxes():
    x = np.full((2, 2, 6, 6), 3.0, np.float32)
    boxes = [np.array([[1, 1, 4, 4]], np.float32), np.array([[0, 0, 5, 5], [2, 1, 3, 5]], np.float32)]
    out = F.roi_align(x, boxes, 2, aligned=True, sampling_ratio=2)
    np.testing.assert_allclose(out, 3.0)
    rois = np.array([[0, 1, 1, 4, 4], [1, 0, 0, 5, 5], [1, 2, 1, 3, 5]], np.float32)
    np.testing.assert_array_equal(F.roi_align(x, rois, 2, aligned=True, sampling_ratio=2), out)
    e = F.roi_align(x, np.zeros((0, 5), np.float32), (2, 3))
    assert e.shape == (0, 2, 2, 3) and e.dtype == np.float32


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sr", [-1, 2])
def test_roi_align_backward_gradcheck(aligned, sr):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 5, 6))
    rois = ROIS[:5] * np.array([1, 0.7, 0.7, 0.7, 0.7])
    w = random_projection((5, 2, 2, 3), seed=2)
    f = lambda: np.sum(w * F.roi_align(x, rois, (2, 3), 0.9, sr, aligned))
    g = F.roi_align_backward(w, rois, x.shape, (2, 3), 0.9, sr, aligned)
    assert g.shape == x.shape and g.dtype == np.float64
    check_grad(f, x, g)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_pool_matches_reference(scale):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 9))
    got, arg = F.roi_pool(x, ROIS, (3, 2), scale, return_indices=True)
    np.testing.assert_array_equal(got, ref_roi_pool(x, ROIS, 3, 2, scale))
    assert arg.dtype == np.int64 and arg.shape == got.shape
    # argmax points at the maximum, -1 marks empty bins (output 0).
    for r, c, i, j in np.ndindex(*arg.shape):
        a = arg[r, c, i, j]
        if a < 0:
            assert got[r, c, i, j] == 0
        else:
            assert x[int(ROIS[r, 0]), c].reshape(-1)[a] == got[r, c, i, j]
    assert F.roi_pool(x.astype(np.float32), ROIS, 2).dtype == np.float64  # boxes float64 promote


def test_roi_pool_backward_gradcheck():
    rng = np.random.default_rng(4)
    x = rng.permutation(2 * 2 * 6 * 7).reshape(2, 2, 6, 7).astype(np.float64) / 10  # distinct values
    rois = ROIS[:5]
    w = random_projection((5, 2, 2, 3), seed=5)
    _, arg = F.roi_pool(x, rois, (2, 3), 0.8, return_indices=True)
    g = F.roi_pool_backward(w, rois, arg, x.shape)
    check_grad(lambda: np.sum(w * F.roi_pool(x, rois, (2, 3), 0.8)), x, g)


def test_bad_inputs_name_the_argument():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="'input'"):
        F.roi_align(x[0], np.zeros((1, 5), np.float32), 2)
    with pytest.raises(ValueError, match="'boxes'"):
        F.roi_align(x, np.zeros((1, 4), np.float32), 2)
    with pytest.raises(ValueError, match="'boxes'"):
        F.roi_align(x, np.array([[1, 0, 0, 2, 2]], np.float32), 2)  # batch index out of range
    with pytest.raises(ValueError, match="'output_size'"):
        F.roi_pool(x, np.zeros((1, 5), np.float32), (0, 2))
    with pytest.raises(TypeError, match="'input'"):
        F.roi_pool(x.astype(np.int32), np.zeros((1, 5), np.float32), 2)
    with pytest.raises(ValueError, match="'grad_output'"):
        F.roi_align_backward(np.zeros((1, 2, 3, 3), np.float32), np.zeros((1, 5), np.float32), x.shape, 2)
    with pytest.raises(TypeError, match="'argmax'"):
        F.roi_pool_backward(np.zeros((1, 2, 2, 2)), np.zeros((1, 5)), np.zeros((1, 2, 2, 2)), x.shape)


def test_roi_results_do_not_depend_on_thread_count():
    import oxinet

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 64, 20, 24)).astype(np.float32)
    xy = rng.uniform(0, 18, (40, 2))
    rois = np.concatenate([rng.integers(0, 2, (40, 1)), xy, xy + rng.uniform(1, 10, (40, 2))], axis=1).astype(np.float32)
    g = rng.standard_normal((40, 64, 3, 3)).astype(np.float32)
    before = oxinet.get_num_threads()
    try:
        res = []
        for t in (1, 2):
            oxinet.set_num_threads(t)
            res.append((F.roi_align(x, rois, 3, aligned=True), F.roi_align_backward(g, rois, x.shape, 3, aligned=True),
                        F.roi_pool(x, rois, 3)))
    finally:
        oxinet.set_num_threads(before)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


from hypothesis import given, settings, strategies as st  # noqa: E402

_c = st.floats(-3, 12, allow_nan=False, width=32).map(float)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), _c, _c, _c, _c), min_size=1, max_size=4),
       st.sampled_from([-1, 1, 3]), st.booleans(), st.sampled_from([1.0, 0.75]),
       st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_roi_ops_match_reference_on_random_boxes(rows, sr, aligned, scale, size):
    x = np.random.default_rng(8).standard_normal((2, 2, 6, 8))
    rois = np.array(rows, np.float64)
    ph, pw = size
    np.testing.assert_allclose(F.roi_align(x, rois, size, scale, sr, aligned),
                               ref_roi_align(x, rois, ph, pw, scale, sr, aligned), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(F.roi_pool(x, rois, size, scale), ref_roi_pool(x, rois, ph, pw, scale))


# --- the channels-last roi_pool path: many channels (SIMD remainders), ties (the first
# maximum in row-major order wins), NaN (never wins), the lowest finite value (argmax -1),
# float32, and 1 vs 2 threads.

def ref_roi_pool_argmax(x, rois, ph, pw, scale):
    """torchvision's scan: first value strictly greater than all before it, from -max."""
    k, (c, h, w) = rois.shape[0], x.shape[1:]
    rnd = lambda v: int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)
    low = np.finfo(x.dtype).min
    out = np.zeros((k, c, ph, pw), x.dtype)
    arg = np.full((k, c, ph, pw), -1, np.int64)
    for r in range(k):
        n = int(rois[r, 0])
        sw, sh, ew, eh = (rnd(v * scale) for v in rois[r, 1:])
        bh, bw = max(eh - sh + 1, 1) / ph, max(ew - sw + 1, 1) / pw
        for i in range(ph):
            for j in range(pw):
                hs = min(max(math.floor(i * bh) + sh, 0), h)
                he = min(max(math.ceil((i + 1) * bh) + sh, 0), h)
                ws = min(max(math.floor(j * bw) + sw, 0), w)
                we = min(max(math.ceil((j + 1) * bw) + sw, 0), w)
                if he <= hs or we <= ws:
                    continue
                for ch in range(c):
                    m, mi = low, -1
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            if x[n, ch, yy, xx] > m:
                                m, mi = x[n, ch, yy, xx], yy * w + xx
                    out[r, ch, i, j], arg[r, ch, i, j] = m, mi
    return out, arg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1, 17, 40])
def test_roi_pool_ties_nan_lowest_and_channels(dtype, c):
    rng = np.random.default_rng(c)
    x = rng.integers(-2, 3, (2, c, 7, 9)).astype(dtype)  # many ties
    x[0, 0, 2, 3] = np.nan
    x[1, c - 1, 1:4, 1:4] = np.nan
    x[0, c // 2, :3, :3] = np.finfo(dtype).min
    got, arg = F.roi_pool(x, ROIS.astype(dtype), (3, 2), 1.0, return_indices=True)
    want, warg = ref_roi_pool_argmax(x, ROIS, 3, 2, 1.0)
    np.testing.assert_array_equal(arg, warg)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == dtype


def test_roi_pool_many_rois_threads_and_views():
    import oxinet

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 33, 12, 15)).astype(np.float32)
    xy = rng.uniform(-3, 16, (40, 2))
    rois = np.concatenate([rng.integers(0, 2, (40, 1)), xy, xy + rng.uniform(0, 9, (40, 2))], 1).astype(np.float32)
    before = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        a1 = F.roi_pool(x, rois, 4, 0.8, return_indices=True)
        oxinet.set_num_threads(2)
        a2 = F.roi_pool(x, rois, 4, 0.8, return_indices=True)
    finally:
        oxinet.set_num_threads(before)
    np.testing.assert_array_equal(a1[0], a2[0])
    np.testing.assert_array_equal(a1[1], a2[1])
    np.testing.assert_array_equal(a1[0], ref_roi_pool(x, rois, 4, 4, 0.8).astype(np.float32))
    # a non-contiguous input gives the same result
    xs = np.ascontiguousarray(x[:, ::-1])[:, ::-1]
    np.testing.assert_array_equal(F.roi_pool(xs, rois, 4, 0.8), a1[0])
