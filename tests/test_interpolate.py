"""interpolate (nearest / linear / bilinear) against NumPy loops of PyTorch's coordinate rules."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet.ops as F
import pool_refs as R

RNG = np.random.default_rng(2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw,out", [((4, 5), (8, 10)), ((4, 5), (7, 3)), ((6, 6), (6, 6)), ((3, 7), (10, 2)), ((5, 4), (1, 1))])
@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", False), ("bilinear", True)])
def test_size_matches_reference(dtype, hw, out, mode, align):
    x = RNG.standard_normal((2, 3) + hw).astype(dtype)
    y = F.interpolate(x, size=out, mode=mode, align_corners=align)
    want = R.interpolate(x, *out, mode, bool(align))
    assert y.dtype == dtype and y.shape == (2, 3) + out
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("sf", [1.7, 0.6, (2, 3), (1.5, 0.75), 2.5])
@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", False), ("bilinear", True)])
def test_scale_factor_uses_given_scale(sf, mode, align):
    x = RNG.standard_normal((1, 2, 4, 6))
    y = F.interpolate(x, scale_factor=sf, mode=mode, align_corners=align)
    f = sf if isinstance(sf, tuple) else (sf, sf)
    out = (int(np.floor(4 * f[0])), int(np.floor(6 * f[1])))
    assert y.shape == (1, 2) + out
    np.testing.assert_allclose(y, R.interpolate(x, *out, mode, bool(align), scales=f), rtol=1e-14, atol=1e-14)
    y2 = F.interpolate(x, scale_factor=sf, mode=mode, align_corners=align, recompute_scale_factor=True)
    np.testing.assert_allclose(y2, R.interpolate(x, *out, mode, bool(align)), rtol=1e-14, atol=1e-14)


def test_given_scale_differs_from_recomputed():
    # in 4 -> out floor(4*1.7) = 6: PyTorch maps with 1/1.7, not 4/6, so the results differ
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    a = F.interpolate(x, scale_factor=(1, 1.7))
    b = F.interpolate(x, scale_factor=(1, 1.7), recompute_scale_factor=True)
    np.testing.assert_array_equal(a[0, 0, 0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(b[0, 0, 0], [0, 0, 1, 2, 2, 3])


def test_known_values():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=2)[0, 0],
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    y = F.interpolate(x, size=4, mode="bilinear", align_corners=False)[0, 0]
    # row 0: src cols clamp(0.5*(j+0.5)-0.5, 0) = 0, 0.25, 0.75, 1.25->(1, lambda clamp)
    np.testing.assert_allclose(y[0], [1, 1.25, 1.75, 2])
    np.testing.assert_allclose(y[:, 0], [1, 1.5, 2.5, 3])
    z = F.interpolate(x, size=3, mode="bilinear", align_corners=True)[0, 0]
    np.testing.assert_allclose(z, [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]])


def test_linear_1d_and_nearest_1d():
    x = RNG.standard_normal((2, 3, 5))
    for align in (False, True):
        y = F.interpolate(x, size=9, mode="linear", align_corners=align)
        want = R.interpolate(x[:, :, None, :], 1, 9, "bilinear", align)[:, :, 0]
        np.testing.assert_allclose(y, want, rtol=1e-14)
    y = F.interpolate(x, scale_factor=1.5)
    np.testing.assert_array_equal(y, R.interpolate(x[:, :, None, :], 1, 7, "nearest", scales=(None, 1.5))[:, :, 0])


def test_noncontiguous_and_empty_batch():
    x = RNG.standard_normal((2, 3, 8, 10))[:, :, ::2, ::3]
    np.testing.assert_allclose(F.interpolate(x, size=(5, 5), mode="bilinear"),
                               R.interpolate(np.ascontiguousarray(x), 5, 5, "bilinear"), rtol=1e-14)
    e = F.interpolate(np.zeros((0, 2, 3, 3), np.float32), scale_factor=2)
    assert e.shape == (0, 2, 6, 6) and e.dtype == np.float32


def test_nan_propagates():
    x = np.ones((1, 1, 3, 3))
    x[0, 0, 1, 1] = np.nan
    y = F.interpolate(x, size=6, mode="bilinear")
    assert np.isnan(y).any() and not np.isnan(y).all()
    assert np.isnan(F.interpolate(x, size=6)).sum() == 4


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 12), ow=st.integers(1, 12),
       mode=st.sampled_from(["nearest", "bilinear-f", "bilinear-t"]), f32=st.booleans())
def test_random_sizes_match_reference(h, w, oh, ow, mode, f32):
    dt = np.float32 if f32 else np.float64
    x = RNG.standard_normal((1, 2, h, w)).astype(dt)
    m, align = ("nearest", None) if mode == "nearest" else ("bilinear", mode.endswith("t"))
    y = F.interpolate(x, size=(oh, ow), mode=m, align_corners=align)
    tol = 1e-5 if f32 else 1e-13
    np.testing.assert_allclose(y, R.interpolate(x, oh, ow, m, bool(align)), rtol=tol, atol=tol)
    dy = RNG.standard_normal(y.shape).astype(dt)
    dx = F.interpolate_backward(dy, x.shape, size=(oh, ow), mode=m, align_corners=align)
    # the backward is the adjoint of the forward: <dy, A x> == <A^T dy, x>
    adj_tol = 1e-3 if f32 else 1e-10
    lhs, rhs = float(np.sum(dy * y, dtype=np.float64)), float(np.sum(dx * x, dtype=np.float64))
    assert abs(lhs - rhs) < adj_tol
