"""Depthwise convolution paths: the stacked small-plane forward (stride 1, planes up to 14
wide, batch > 1) against the per-plane path (batch 1, same tap order: bitwise equal) and a
NumPy loop reference, over padding, dilation, channel multipliers, bias and odd sizes."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
from oxinet import ops


def ref_depthwise(x, w, b, padding, dilation, groups):
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    og = co // groups
    (pt, pb), (pl, pr) = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = h + pt + pb - dilation * (kh - 1)
    ow = wd + pl + pr - dilation * (kw - 1)
    y = np.zeros((n, co, oh, ow))
    for o in range(co):
        ci = o // og
        for ky in range(kh):
            for kx in range(kw):
                y[:, o] += w[o, 0, ky, kx] * xp[:, ci, ky * dilation:ky * dilation + oh, kx * dilation:kx * dilation + ow]
        if b is not None:
            y[:, o] += b[o]
    return y


CASES = [
    # (n, c, h, w, mult, k, pad, dilation, bias)
    (4, 5, 2, 2, 1, 3, 1, 1, False),
    (3, 7, 4, 4, 1, 3, 1, 1, True),
    (2, 3, 8, 8, 2, 3, 1, 1, True),
    (5, 4, 5, 7, 1, 3, 0, 1, False),
    (2, 6, 9, 14, 1, 5, 2, 1, True),
    (3, 2, 6, 6, 1, 3, 2, 2, False),
    (2, 3, 1, 1, 1, 3, 1, 1, True),
    (2, 4, 13, 3, 3, 2, (1, 0), 1, True),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacked_forward_matches_per_image_and_reference(case, dtype):
    n, c, h, wd, mult, k, pad, dil, bias = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = rng.standard_normal((c * mult, 1, k, k)).astype(dtype)
    b = rng.standard_normal(c * mult).astype(dtype) if bias else None
    y = ops.conv2d(x, w, b, padding=pad, dilation=dil, groups=c)
    per_image = np.concatenate([ops.conv2d(x[i:i + 1], w, b, padding=pad, dilation=dil, groups=c) for i in range(n)])
    np.testing.assert_array_equal(y, per_image)
    p = (pad, pad) if isinstance(pad, int) else pad
    ref = ref_depthwise(x, w, b, ((p[0], p[0]), (p[1], p[1])), dil, c)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


def test_same_padding_with_even_kernel_and_threads():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 8, 5, 6)).astype(np.float32)
    w = rng.standard_normal((8, 1, 4, 4)).astype(np.float32)
    ref = ref_depthwise(x, w, None, ((1, 2), (1, 2)), 1, 8)
    outs = []
    try:
        for t in (1, 2, 3):
            ox.set_num_threads(t)
            outs.append(ops.conv2d(x, w, padding="same", groups=8))
    finally:
        ox.set_num_threads(2)
    for o in outs:
        np.testing.assert_array_equal(o, outs[0])
    np.testing.assert_allclose(outs[0], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_stacked_input_grad_matches_per_image_and_is_the_adjoint(case):
    n, c, h, wd, mult, k, pad, dil, _ = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((c * mult, 1, k, k))
    y = ops.conv2d(x, w, padding=pad, dilation=dil, groups=c)
    dy = rng.standard_normal(y.shape)
    dx, _, _ = ops.conv2d_backward(dy, x, w, padding=pad, dilation=dil, groups=c, needs=("input",))
    per_image = np.concatenate([
        ops.conv2d_backward(dy[i:i + 1], x[i:i + 1], w, padding=pad, dilation=dil, groups=c, needs=("input",))[0]
        for i in range(n)])
    np.testing.assert_array_equal(dx, per_image)
    # <dy, conv(x)> == <conv^T(dy), x> for the linear map x -> conv(x)
    assert np.isclose(np.sum(dy * y), np.sum(dx * x), rtol=1e-12)
    dx32, _, _ = ops.conv2d_backward(dy.astype(np.float32), x.astype(np.float32), w.astype(np.float32), padding=pad,
                                     dilation=dil, groups=c, needs=("input",))
    np.testing.assert_allclose(dx32, dx, rtol=1e-4, atol=1e-4)


def ref_weight_grad(dy, x, k, padding, dilation, groups, mult):
    n, c, h, wd = x.shape
    (pt, pb), (pl, pr) = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = dy.shape[2:]
    dw = np.zeros((c * mult, 1, k, k))
    for o in range(c * mult):
        ci = o // mult
        for ky in range(k):
            for kx in range(k):
                win = xp[:, ci, ky * dilation:ky * dilation + oh, kx * dilation:kx * dilation + ow]
                dw[o, 0, ky, kx] = np.sum(dy[:, o].astype(np.float64) * win)
    return dw


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacked_weight_grad_matches_reference(case, dtype):
    n, c, h, wd, mult, k, pad, dil, _ = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = rng.standard_normal((c * mult, 1, k, k)).astype(dtype)
    y = ops.conv2d(x, w, padding=pad, dilation=dil, groups=c)
    dy = rng.standard_normal(y.shape).astype(dtype)
    _, dw, _ = ops.conv2d_backward(dy, x, w, padding=pad, dilation=dil, groups=c, needs=("weight",))
    p = (pad, pad) if isinstance(pad, int) else pad
    ref = ref_weight_grad(dy, x, k, ((p[0], p[0]), (p[1], p[1])), dil, c, mult)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert dw.dtype == dtype
    np.testing.assert_allclose(dw, ref, rtol=tol, atol=tol * 10)


def test_stacked_weight_grad_threads_and_non_finite_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 12, 4, 4)).astype(np.float32)
    w = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((16, 12, 4, 4)).astype(np.float32)
    outs = []
    try:
        for t in (1, 2, 3):
            ox.set_num_threads(t)
            outs.append(ops.conv2d_backward(dy, x, w, padding=1, groups=12, needs=("weight",))[1])
    finally:
        ox.set_num_threads(2)
    for o in outs:
        np.testing.assert_array_equal(o, outs[0])
    # an infinite input value reaches only the taps whose windows cover it
    x[3, 5, 0, 0] = np.inf
    dy = np.abs(dy) + 0.1
    _, dw, _ = ops.conv2d_backward(dy, x, w, padding=1, groups=12, needs=("weight",))
    ref = ref_weight_grad(dy, x, 3, ((1, 1), (1, 1)), 1, 12, 1)
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(ref))
    assert np.isinf(ref[5]).any() and np.isfinite(ref[5]).any()
    fin = np.isfinite(ref)
    np.testing.assert_allclose(dw[fin], ref[fin], rtol=2e-5, atol=2e-4)
