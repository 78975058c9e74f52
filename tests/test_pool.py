"""Pooling forward passes against naive NumPy loops and the course's worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oxinet.ops as F
import pool_refs as R

RNG = np.random.default_rng(0)


def small_ints(shape, lo=-4, hi=5, dtype=np.float64):
    """Integers in a small range: many ties, exact averages."""
    return RNG.integers(lo, hi, size=shape).astype(dtype)


# ----------------------------------------------------------------- course worked examples

def test_course_max_pool_f2_s2():
    a = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]], np.float32)
    y = F.max_pool2d(a[None, None], 2, 2)
    np.testing.assert_array_equal(y[0, 0], [[9, 2], [6, 3]])


def test_course_max_pool_f3_s1():
    a = np.array([[1, 3, 2, 1, 3], [2, 9, 1, 1, 5], [1, 3, 2, 3, 2], [8, 3, 5, 1, 0], [5, 6, 1, 2, 9]],
                 np.float32)
    y = F.max_pool2d(a[None, None], 3, 1)
    np.testing.assert_array_equal(y[0, 0], [[9, 9, 5], [9, 9, 5], [8, 6, 9]])


def test_course_avg_pool_f2_s2_with_erratum():
    # INVENTORY erratum E9: the seed prints 5.75 for the top-left block; 3.75 is right.
    a = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 4, 2, 3], [5, 6, 1, 2]], np.float32)
    y = F.avg_pool2d(a[None, None], 2, 2)
    np.testing.assert_array_equal(y[0, 0], [[3.75, 1.25], [4, 2]])


def test_i2dl_max_pool():
    a = np.array([[3, 1, 3, 5], [6, 0, 7, 9], [3, 2, 1, 4], [0, 2, 4, 3]], np.float64)
    y, idx = F.max_pool2d(a[None, None], 2, return_indices=True)
    np.testing.assert_array_equal(y[0, 0], [[6, 9], [3, 4]])
    np.testing.assert_array_equal(idx[0, 0], [[4, 7], [8, 11]])  # tie 4 vs 4: first in row-major order


def test_course_output_size_formula():
    # n_out = floor((n - f)/s) + 1: LeNet 28 -> 14, AlexNet 55 -> 27 -> 13 -> 6 (3x3 s2)
    assert F.max_pool2d(np.zeros((1, 1, 28, 28), np.float32), 2, 2).shape == (1, 1, 14, 14)
    for n, m in [(55, 27), (27, 13), (13, 6)]:
        assert F.max_pool2d(np.zeros((1, 1, n, n), np.float32), 3, 2).shape == (1, 1, m, m)
    assert F.pool_output_size(55, 3, 2) == 27


# ----------------------------------------------------------------- parameter combinations

MAX_CASES = [
    # kernel, stride, padding, dilation, ceil_mode
    (2, 2, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    (2, 1, 0, 1, False),
    ((3, 2), (2, 1), (1, 0), 1, True),
    (3, 3, 1, 2, False),
    ((2, 3), (3, 2), (1, 1), (2, 1), True),
    (1, 2, 0, 1, False),
    (4, 3, 2, 1, True),
]
SHAPES = [(2, 3, 7, 9), (1, 1, 5, 5), (1, 2, 8, 6), (2, 1, 4, 11), (1, 2, 5, 70)]  # 70: several SIMD chunks


@pytest.mark.parametrize("k,s,p,d,ceil", MAX_CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_max_pool2d_matches_loops(k, s, p, d, ceil, shape):
    x = small_ints(shape)
    try:
        want, want_ix = R.max_pool2d(x, k, s, p, d, ceil)
    except ValueError:
        pytest.skip("shape too small for this window")
    if want.size == 0 or 0 in want.shape:
        pytest.skip("empty")
    y, ix = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(ix, want_ix)
    assert ix.dtype == np.int64
    y32, ix32 = F.max_pool2d(x.astype(np.float32), k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(y32, want)
    np.testing.assert_array_equal(ix32, want_ix)
    np.testing.assert_array_equal(F.max_pool2d(x.astype(np.float32), k, s, p, d, ceil), want)


AVG_CASES = [
    (2, 2, 0, False),
    (3, 2, 1, False),
    (3, 2, 1, True),
    ((3, 2), (1, 2), (1, 1), True),
    (4, 3, 2, True),
    (3, 1, 1, False),
]


@pytest.mark.parametrize("k,s,p,ceil", AVG_CASES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("include_pad,divisor", [(True, None), (False, None), (True, 5), (False, -3)])
def test_avg_pool2d_matches_loops(k, s, p, ceil, shape, include_pad, divisor):
    x = RNG.standard_normal(shape)
    want = R.avg_pool2d(x, k, s, p, ceil, include_pad, divisor)
    y = F.avg_pool2d(x, k, s, p, ceil, include_pad, divisor)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    y32 = F.avg_pool2d(x.astype(np.float32), k, s, p, ceil, include_pad, divisor)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, want, rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9), w=st.integers(1, 9),
    kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3),
    dh=st.integers(1, 2), dw=st.integers(1, 2),
    ceil=st.booleans(), data=st.data(),
)
def test_max_pool2d_random_params(h, w, kh, kw, sh, sw, dh, dw, ceil, data):
    ph = data.draw(st.integers(0, kh // 2))
    pw = data.draw(st.integers(0, kw // 2))
    x = small_ints((1, 2, h, w), -2, 3)
    oh = R.out_len(h, kh, sh, ph, dh, ceil)
    ow = R.out_len(w, kw, sw, pw, dw, ceil)
    if oh < 1 or ow < 1:
        with pytest.raises(ValueError, match="'kernel_size'"):
            F.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil)
        return
    want, want_ix = R.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil)
    for dt in (np.float64, np.float32):
        y, ix = F.max_pool2d(x.astype(dt), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil, return_indices=True)
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(ix, want_ix)
    ah, aw = R.out_len(h, kh, sh, ph, 1, ceil), R.out_len(w, kw, sw, pw, 1, ceil)
    if ah >= 1 and aw >= 1:
        inc = data.draw(st.booleans())
        want = R.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil, inc)
        np.testing.assert_allclose(F.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil, inc), want, rtol=1e-12)


def test_ceil_mode_drops_window_starting_in_right_padding():
    # n=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4 windows, but the 4th would start at 6-1 = 5,
    # in the right padding, so PyTorch drops it
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    y = F.max_pool2d(x, 2, 2, 1, ceil_mode=True)
    assert y.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(y[0, 0], [[0, 2, 4], [10, 12, 14], [20, 22, 24]])
    assert F.avg_pool2d(x, 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    x = np.arange(36, dtype=np.float64).reshape(1, 1, 6, 6)
    assert F.max_pool2d(x, 3, 3, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert F.max_pool2d(x, 2, 2, 0, ceil_mode=True).shape == (1, 1, 3, 3)
    assert F.max_pool2d(np.zeros((1, 1, 5, 5)), 2, 2, ceil_mode=True).shape == (1, 1, 3, 3)


def test_nan_propagates_and_wins_index():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    y, ix = F.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])
    assert ix[0, 0, 0, 0] == 4  # the last NaN in scan order, as PyTorch's CPU kernel
    y3 = F.max_pool2d(x, 3, 2, 1)
    assert np.isnan(y3[0, 0, 0, 0]) and np.isnan(y3[0, 0, 0, 1]) and np.isnan(y3[0, 0, 1, 0])
    assert np.isnan(F.avg_pool2d(x, 2)[0, 0, 0, 0])
    assert np.isnan(F.adaptive_max_pool2d(x, 1)[0, 0, 0, 0])


def test_all_neg_inf_window_reports_first_position():
    x = np.full((1, 1, 4, 4), -np.inf)
    y, ix = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(ix[0, 0], [[0, 1], [4, 5]])


def test_inf_values():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 3, 3] = np.inf
    x[0, 0, 0, 0] = -np.inf
    np.testing.assert_array_equal(F.max_pool2d(x, 2)[0, 0], [[0, 0], [0, np.inf]])
    np.testing.assert_array_equal(F.avg_pool2d(x, 2)[0, 0], [[-np.inf, 0], [0, np.inf]])


def test_unbatched_noncontiguous_batch1_1x1():
    x = RNG.standard_normal((2, 3, 10, 12))
    xv = x[:, :, ::2, 1::2]  # non-contiguous view
    assert not xv.flags.c_contiguous
    want, _ = R.max_pool2d(np.ascontiguousarray(xv), 2)
    np.testing.assert_array_equal(F.max_pool2d(xv, 2), want)
    np.testing.assert_array_equal(F.max_pool2d(xv[0], 2), want[0])  # (C, H, W)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # F-ish strides
    np.testing.assert_allclose(F.avg_pool2d(xt, 3, 2, 1), R.avg_pool2d(x, 3, 2, 1))
    one = RNG.standard_normal((1, 4, 1, 1))
    np.testing.assert_array_equal(F.max_pool2d(one, 1), one)
    np.testing.assert_array_equal(F.avg_pool2d(one, 1), one)
    np.testing.assert_array_equal(F.adaptive_avg_pool2d(one, 1), one)
    np.testing.assert_array_equal(F.interpolate(one, size=1), one)


def test_empty_batch():
    x = np.zeros((0, 3, 8, 8), np.float32)
    y, ix = F.max_pool2d(x, 2, return_indices=True)
    assert y.shape == (0, 3, 4, 4) and y.dtype == np.float32 and ix.dtype == np.int64
    assert F.avg_pool2d(x, 3, 2, 1).shape == (0, 3, 4, 4)
    assert F.adaptive_avg_pool2d(x, 2).shape == (0, 3, 2, 2)
    assert F.max_pool2d_backward(y, ix, x.shape).shape == x.shape


def test_dtype_policy():
    x32 = RNG.standard_normal((1, 2, 6, 6)).astype(np.float32)
    assert F.max_pool2d(x32, 2).dtype == np.float32
    assert F.avg_pool2d(x32.astype(np.float64), 2).dtype == np.float64
    assert F.adaptive_max_pool2d(x32, 3).dtype == np.float32
    assert F.max_pool2d([[[[1.0, 2.0], [3.0, 4.0]]]], 2).dtype == np.float64  # lists -> float64


# ----------------------------------------------------------------- 1-D pooling

@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False), (4, 3, 2, 1, True)])
def test_pool1d_matches_2d_reference(k, s, p, d, ceil):
    x = small_ints((2, 3, 11))
    want, want_ix = R.max_pool2d(x[:, :, None, :], (1, k), (1, s), (0, p), (1, d), ceil)
    y, ix = F.max_pool1d(x, k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(y, want[:, :, 0])
    np.testing.assert_array_equal(ix, want_ix[:, :, 0])
    wa = R.avg_pool2d(x[:, :, None, :], (1, k), (1, s), (0, p), ceil, False)
    np.testing.assert_allclose(F.avg_pool1d(x, k, s, p, ceil, count_include_pad=False), wa[:, :, 0])
    np.testing.assert_allclose(F.avg_pool1d(x[0], k, s, p, ceil), R.avg_pool2d(x[:1, :, None, :], (1, k), (1, s), (0, p), ceil)[0, :, 0])


# ----------------------------------------------------------------- adaptive and global

@pytest.mark.parametrize("hw,out", [((7, 9), (3, 4)), ((5, 5), (5, 5)), ((4, 6), (6, 4)), ((8, 8), (1, 1)), ((6, 7), (4, 3))])
def test_adaptive_matches_loops(hw, out):
    x = RNG.standard_normal((2, 3) + hw)
    want, _ = R.adaptive_pool2d(x, *out, "avg")
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, out), want, rtol=1e-12)
    xi = RNG.permutation(np.prod(x.shape)).reshape(x.shape).astype(np.float64)  # distinct
    want, want_ix = R.adaptive_pool2d(xi, *out, "max")
    y, ix = F.adaptive_max_pool2d(xi, out, return_indices=True)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(ix, want_ix)


def test_adaptive_none_and_int_sizes_and_1d():
    x = RNG.standard_normal((1, 2, 6, 5))
    assert F.adaptive_avg_pool2d(x, (None, 2)).shape == (1, 2, 6, 2)
    assert F.adaptive_max_pool2d(x, 3).shape == (1, 2, 3, 3)
    x1 = RNG.standard_normal((2, 3, 10))
    want, _ = R.adaptive_pool2d(x1[:, :, None, :], 1, 4, "avg")
    np.testing.assert_allclose(F.adaptive_avg_pool1d(x1, 4), want[:, :, 0])
    y, ix = F.adaptive_max_pool1d(x1, 3, return_indices=True)
    np.testing.assert_array_equal(np.take_along_axis(x1, ix, 2), y)


def test_global_pools():
    x = RNG.standard_normal((3, 4, 7, 5))
    np.testing.assert_allclose(F.global_avg_pool2d(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    y, ix = F.global_max_pool2d(x, return_indices=True)
    np.testing.assert_array_equal(y, x.max(axis=(2, 3), keepdims=True))
    np.testing.assert_array_equal(ix[..., 0, 0], x.reshape(3, 4, -1).argmax(axis=2))


# ----------------------------------------------------------------- unpooling

def test_max_unpool2d_inverts_max_pool():
    x = RNG.permutation(2 * 3 * 8 * 8).reshape(2, 3, 8, 8).astype(np.float32)
    y, ix = F.max_pool2d(x, 2, return_indices=True)
    u = F.max_unpool2d(y, ix, 2)
    assert u.shape == x.shape
    want = np.where(x == np.repeat(np.repeat(y, 2, 2), 2, 3), x, 0)
    np.testing.assert_array_equal(u, want)
    # odd input: default size is smaller, output_size restores it
    x7 = RNG.standard_normal((1, 2, 7, 7))
    y7, ix7 = F.max_pool2d(x7, 2, return_indices=True)
    u7 = F.max_unpool2d(y7, ix7, 2, output_size=(7, 7))
    assert u7.shape == (1, 2, 7, 7)
    assert F.max_unpool2d(y7, ix7, 2, output_size=x7.shape).shape == x7.shape
    np.testing.assert_array_equal(u7.reshape(2, -1)[np.arange(2)[:, None], ix7.reshape(2, -1)], y7.reshape(2, -1))
    x1 = RNG.standard_normal((2, 2, 9))
    y1, ix1 = F.max_pool1d(x1, 3, 2, 1, return_indices=True)
    u1 = F.max_unpool1d(y1, ix1, 3, 2, 1, output_size=(9,))
    np.testing.assert_array_equal(np.take_along_axis(u1, ix1, 2), y1)


def test_out_parameter():
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y, ix = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    out = np.full(y.shape, np.nan, np.float32)
    r = F.max_pool2d(x, 3, 2, 1, out=out)
    assert r is out
    np.testing.assert_array_equal(out, y)
    dx = F.max_pool2d_backward(y, ix, x.shape)
    buf = np.full(x.shape, 7.0, np.float32)
    assert F.max_pool2d_backward(y, ix, x.shape, out=buf) is buf
    np.testing.assert_array_equal(buf, dx)
    # a non-contiguous out is filled too
    big = np.zeros((2, 3, 8, 16), np.float32)
    view = big[:, :, :, ::2]
    F.avg_pool2d_backward(y, x.shape, 3, 2, 1, out=view)
    np.testing.assert_allclose(view, F.avg_pool2d_backward(y, x.shape, 3, 2, 1))
    assert not big[:, :, :, 1::2].any()
    a = F.avg_pool2d(x, 2)
    o2 = np.empty_like(a)
    F.avg_pool2d(x, 2, out=o2)
    np.testing.assert_array_equal(o2, a)
    with pytest.raises(ValueError, match="'out'"):
        F.max_pool2d(x, 2, out=np.empty((2, 3, 3, 3), np.float32))
    with pytest.raises(TypeError, match="'out'"):
        F.avg_pool2d_backward(y, x.shape, 3, 2, 1, out=np.empty(x.shape, np.float64))
    with pytest.raises(ValueError, match="'out'"):
        F.avg_pool2d(x, 1, out=x)


def test_results_do_not_depend_on_thread_count():
    import oxinet

    x = RNG.standard_normal((4, 16, 30, 30)).astype(np.float32)
    before = oxinet.get_num_threads()
    res = []
    try:
        for n in (1, 2, 3):
            oxinet.set_num_threads(n)
            y, ix = F.max_pool2d(x, 3, 2, 1, return_indices=True)
            res.append((y, ix, F.avg_pool2d_backward(y, x.shape, 3, 2, 1), F.max_pool2d_backward(y, ix, x.shape),
                        F.interpolate(x, scale_factor=1.5, mode="bilinear")))
    finally:
        oxinet.set_num_threads(before)
    for other in res[1:]:
        for a, b in zip(res[0], other):
            np.testing.assert_array_equal(a, b)
