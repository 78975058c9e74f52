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


# ---- strided and general depthwise (phase-split stacked path) -------------------------

def ref_depthwise_strided(x, w, b, stride, padding, dilation):
    """Depthwise convolution by direct windows (float64): padding ((top, bottom), (left, right))."""
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    og = co // c
    (pt, pb), (pl, pr) = padding
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, co, oh, ow))
    for o in range(co):
        for ky in range(kh):
            for kx in range(kw):
                win = xp[:, o // og, ky * dh:ky * dh + sh * (oh - 1) + 1:sh, kx * dw:kx * dw + sw * (ow - 1) + 1:sw]
                y[:, o] += w[o, 0, ky, kx] * win
        if b is not None:
            y[:, o] += b[o]
    return y


def ref_depthwise_grads(dy, x, w, stride, padding, dilation):
    """(dx, dw) of the depthwise convolution by scattering each tap's window (float64)."""
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    og = co // c
    (pt, pb), (pl, pr) = padding
    (sh, sw), (dh, dw_) = stride, dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    dxp = np.zeros_like(xp)
    oh, ow = dy.shape[2:]
    gw = np.zeros(w.shape)
    for o in range(co):
        ci = o // og
        for ky in range(kh):
            for kx in range(kw):
                sl = (slice(None), ci, slice(ky * dh, ky * dh + sh * (oh - 1) + 1, sh),
                      slice(kx * dw_, kx * dw_ + sw * (ow - 1) + 1, sw))
                gw[o, 0, ky, kx] = np.sum(dy[:, o] * xp[sl])
                dxp[sl] += w[o, 0, ky, kx] * dy[:, o]
    return dxp[:, :, pt:pt + h, pl:pl + wd], gw


STRIDED = [
    # (n, c, h, w, mult, (kh, kw), stride, padding ((t, b), (l, r)), dilation)
    (3, 4, 7, 9, 1, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    (1, 3, 8, 8, 1, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),       # batch 1
    (2, 3, 33, 35, 2, (3, 3), (2, 2), ((1, 1), (0, 1)), (1, 1)),     # wide odd rows, multiplier 2
    (2, 3, 17, 20, 1, (3, 3), (1, 2), ((1, 1), (0, 1)), (1, 1)),     # stride only along the width
    (2, 2, 19, 18, 1, (5, 3), (3, 3), ((2, 1), (1, 2)), (1, 2)),     # stride 3, dilation
    (3, 2, 9, 16, 1, (3, 3), (2, 2), ((2, 2), (2, 2)), (2, 2)),      # stride 2 with dilation 2
    (2, 3, 1, 1, 2, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),       # 1x1 planes
    (2, 5, 4, 4, 1, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),       # MobileNet's smallest stride-2 plane
    (30, 2, 32, 32, 1, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),    # several image chunks
]


def _strided_args(case, dtype, seed):
    n, c, h, wd, mult, k, stride, pad, dil = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = rng.standard_normal((c * mult, 1) + k).astype(dtype)
    b = rng.standard_normal(c * mult).astype(dtype)
    return x, w, b, stride, pad, dil


def _pad_arg(pad):
    """ops.conv2d padding for ((t, b), (l, r)): symmetric pairs as ints, else via F.pad."""
    (t, b_), (l, r) = pad
    return (t, l) if (t == b_ and l == r) else None


def _conv(x, w, b, stride, pad, dil, c):
    p = _pad_arg(pad)
    if p is None:
        (t, b_), (l, r) = pad
        x = np.pad(x, ((0, 0), (0, 0), (t, b_), (l, r)))
        p = 0
    return ops.conv2d(x, w, b, stride=stride, padding=p, dilation=dil, groups=c)


def _conv_bwd(dy, x, w, stride, pad, dil, c):
    p = _pad_arg(pad)
    if p is None:
        (t, b_), (l, r) = pad
        xp = np.pad(x, ((0, 0), (0, 0), (t, b_), (l, r)))
        dx, dw, _ = ops.conv2d_backward(dy, xp, w, stride=stride, padding=0, dilation=dil, groups=c,
                                        needs=("input", "weight"))
        return dx[:, :, t:t + x.shape[2], l:l + x.shape[3]], dw
    dx, dw, _ = ops.conv2d_backward(dy, x, w, stride=stride, padding=p, dilation=dil, groups=c,
                                    needs=("input", "weight"))
    return dx, dw


@pytest.mark.parametrize("case", STRIDED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_depthwise_forward_and_grads_match_reference(case, dtype):
    x, w, b, stride, pad, dil = _strided_args(case, dtype, 10)
    c = x.shape[1]
    y = _conv(x, w, b, stride, pad, dil, c)
    ref = ref_depthwise_strided(x, w, b, stride, pad, dil)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
    dy = np.random.default_rng(11).standard_normal(y.shape).astype(dtype)
    dx, dw = _conv_bwd(dy, x, w, stride, pad, dil, c)
    rdx, rdw = ref_depthwise_grads(dy.astype(np.float64), x, w.astype(np.float64), stride, pad, dil)
    assert dx.dtype == dtype and dw.dtype == dtype
    np.testing.assert_allclose(dx, rdx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dw, rdw, rtol=tol * 5, atol=tol * 50)


def test_strided_batch_equals_per_image_forward():
    # forward: every image's outputs use the same taps in the same order, batched or not
    x, w, b, stride, pad, dil = _strided_args(STRIDED[2], np.float32, 12)
    c = x.shape[1]
    y = _conv(x, w, b, stride, pad, dil, c)
    per = np.concatenate([_conv(x[i:i + 1], w, b, stride, pad, dil, c) for i in range(x.shape[0])])
    np.testing.assert_array_equal(y, per)


@pytest.mark.parametrize("stride,padding,dilation", [(2, 1, 1), ((2, 1), (1, 0), 1), (3, 2, 2)])
def test_strided_depthwise_finite_difference_gradients(stride, padding, dilation):
    from helpers import check_grad, random_projection
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((3, 1, 3, 3))
    y = ops.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=3)
    proj = random_projection(y.shape, seed=14)
    dx, dw, _ = ops.conv2d_backward(proj, x, w, stride=stride, padding=padding, dilation=dilation, groups=3,
                                    needs=("input", "weight"))

    def loss():
        return float(np.sum(proj * ops.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=3)))

    check_grad(loss, x, dx)
    check_grad(loss, w, dw)


def test_strided_depthwise_threads_bitwise():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((20, 6, 18, 17)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((20, 6, 9, 9)).astype(np.float32)
    outs = []
    try:
        for t in (1, 2):
            ox.set_num_threads(t)
            y = ops.conv2d(x, w, stride=2, padding=1, groups=6)
            dx, dw, _ = ops.conv2d_backward(dy, x, w, stride=2, padding=1, groups=6, needs=("input", "weight"))
            outs.append((y, dx, dw))
    finally:
        ox.set_num_threads(2)
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(a, b)


def test_strided_weight_grad_with_non_finite_input():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((4, 3, 9, 8))
    w = rng.standard_normal((3, 1, 3, 3))
    x[1, 2, 4, 4] = np.inf
    dy = np.abs(rng.standard_normal((4, 3, 5, 4))) + 0.1
    _, dw, _ = ops.conv2d_backward(dy, x, w, stride=2, padding=1, groups=3, needs=("weight",))
    _, ref = ref_depthwise_grads(dy, x, w, (2, 2), ((1, 1), (1, 1)), (1, 1))
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(ref))
    assert np.isinf(ref[2]).any() and np.isfinite(ref[:2]).all()
    fin = np.isfinite(ref)
    np.testing.assert_allclose(dw[fin], ref[fin], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h,w", [(4, 4), (2, 2), (8, 8), (3, 5)])
def test_small_same_planes_threads_bitwise_and_reference(h, w):
    # stride-1 'same' planes of <= 64 values, batch > 1: the masked path
    rng = np.random.default_rng(17)
    x = rng.standard_normal((9, 7, h, w)).astype(np.float32)
    wt = rng.standard_normal((7, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    dy = rng.standard_normal((9, 7, h, w)).astype(np.float32)
    outs = []
    try:
        for t in (1, 2):
            ox.set_num_threads(t)
            y = ops.conv2d(x, wt, b, padding=1, groups=7)
            dx, dw, _ = ops.conv2d_backward(dy, x, wt, padding=1, groups=7, needs=("input", "weight"))
            outs.append((y, dx, dw))
    finally:
        ox.set_num_threads(2)
    for a, c in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(a, c)
    y, dx, dw = outs[0]
    np.testing.assert_allclose(y, ref_depthwise(x, wt, b, ((1, 1), (1, 1)), 1, 7), rtol=1e-5, atol=1e-5)
    rdx, rdw = ref_depthwise_grads(dy.astype(np.float64), x, wt.astype(np.float64), (1, 1), ((1, 1), (1, 1)), (1, 1))
    np.testing.assert_allclose(dx, rdx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-4)
