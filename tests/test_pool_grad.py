"""float64 finite-difference checks of every pooling / unpooling / interpolation backward."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet.ops as F
from helpers import check_grad, random_projection

RNG = np.random.default_rng(1)


def distinct(shape):
    """Values at least 0.05 apart, so a max's argmax is stable under eps perturbations."""
    n = int(np.prod(shape))
    return (RNG.permutation(n).astype(np.float64) * 0.05 + RNG.uniform(0, 0.01, n)).reshape(shape)


def loss_and_grad(fwd, x, w):
    return lambda: float(np.sum(w * fwd(x)))


@pytest.mark.parametrize("k,s,p,d,ceil", [
    (2, 2, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    ((2, 3), (1, 2), (1, 1), (2, 1), True),
    (3, 1, 1, 1, False),  # overlapping windows: gradients accumulate
])
@pytest.mark.parametrize("shape", [(2, 2, 5, 6), (1, 1, 4, 4), (1, 2, 3, 7)])
def test_max_pool2d_grad(k, s, p, d, ceil, shape):
    x = distinct(shape)
    y, ix = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    w = random_projection(y.shape)
    dx = F.max_pool2d_backward(w, ix, x.shape)
    check_grad(loss_and_grad(lambda a: F.max_pool2d(a, k, s, p, d, ceil), x, w), x, dx)


@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 2, True), (3, 1, 1, 1, False)])
def test_max_pool1d_grad(k, s, p, d, ceil):
    x = distinct((2, 2, 9))
    y, ix = F.max_pool1d(x, k, s, p, d, ceil, return_indices=True)
    w = random_projection(y.shape)
    dx = F.max_pool1d_backward(w, ix, x.shape)
    check_grad(loss_and_grad(lambda a: F.max_pool1d(a, k, s, p, d, ceil), x, w), x, dx)


AVG = [
    (2, 2, 0, False, True, None),
    (3, 2, 1, False, True, None),
    (3, 2, 1, True, False, None),
    (3, 2, 1, True, True, None),
    ((3, 2), (1, 2), (1, 1), True, False, None),
    (3, 2, 1, False, True, 4),
    (4, 3, 2, True, False, -2),
]


@pytest.mark.parametrize("k,s,p,ceil,inc,div", AVG)
@pytest.mark.parametrize("shape", [(2, 2, 5, 6), (1, 1, 7, 4)])
def test_avg_pool2d_grad(k, s, p, ceil, inc, div, shape):
    x = RNG.standard_normal(shape)
    fwd = lambda a: F.avg_pool2d(a, k, s, p, ceil, inc, div)  # noqa: E731
    w = random_projection(fwd(x).shape)
    dx = F.avg_pool2d_backward(w, x.shape, k, s, p, ceil, inc, div)
    check_grad(loss_and_grad(fwd, x, w), x, dx)


@pytest.mark.parametrize("k,s,p,ceil,inc", [(2, 2, 0, False, True), (3, 2, 1, True, False), (4, 1, 2, False, True)])
def test_avg_pool1d_grad(k, s, p, ceil, inc):
    x = RNG.standard_normal((2, 3, 8))
    fwd = lambda a: F.avg_pool1d(a, k, s, p, ceil, inc)  # noqa: E731
    w = random_projection(fwd(x).shape)
    dx = F.avg_pool1d_backward(w, x.shape, k, s, p, ceil, inc)
    check_grad(loss_and_grad(fwd, x, w), x, dx)


@pytest.mark.parametrize("hw,out", [((5, 7), (3, 2)), ((4, 4), (6, 5)), ((6, 5), (1, 1))])
def test_adaptive_grads(hw, out):
    x = RNG.standard_normal((2, 2) + hw)
    fwd = lambda a: F.adaptive_avg_pool2d(a, out)  # noqa: E731
    w = random_projection(fwd(x).shape)
    check_grad(loss_and_grad(fwd, x, w), x, F.adaptive_avg_pool2d_backward(w, x.shape))
    xd = distinct(x.shape)
    y, ix = F.adaptive_max_pool2d(xd, out, return_indices=True)
    dx = F.adaptive_max_pool2d_backward(w, ix, xd.shape)
    check_grad(loss_and_grad(lambda a: F.adaptive_max_pool2d(a, out), xd, w), xd, dx)


def test_adaptive_1d_and_global_grads():
    x = RNG.standard_normal((2, 3, 7))
    w = random_projection((2, 3, 3))
    check_grad(loss_and_grad(lambda a: F.adaptive_avg_pool1d(a, 3), x, w), x,
               F.adaptive_avg_pool1d_backward(w, x.shape))
    xd = distinct(x.shape)
    _, ix = F.adaptive_max_pool1d(xd, 3, return_indices=True)
    check_grad(loss_and_grad(lambda a: F.adaptive_max_pool1d(a, 3), xd, w), xd,
               F.adaptive_max_pool1d_backward(w, ix, xd.shape))
    x4 = distinct((2, 3, 4, 5))
    w4 = random_projection((2, 3, 1, 1))
    check_grad(loss_and_grad(F.global_avg_pool2d, x4, w4), x4, F.global_avg_pool2d_backward(w4, x4.shape))
    _, ix = F.global_max_pool2d(x4, return_indices=True)
    check_grad(loss_and_grad(F.global_max_pool2d, x4, w4), x4, F.global_max_pool2d_backward(w4, ix, x4.shape))


def test_max_unpool_grads():
    x = distinct((2, 2, 6, 6))
    _, ix = F.max_pool2d(x, 2, return_indices=True)
    v = RNG.standard_normal(ix.shape)
    w = random_projection((2, 2, 6, 6))
    dv = F.max_unpool2d_backward(w, ix)
    check_grad(loss_and_grad(lambda a: F.max_unpool2d(a, ix, 2), v, w), v, dv)
    x1 = distinct((1, 2, 9))
    _, ix1 = F.max_pool1d(x1, 3, 3, 1, return_indices=True)  # no shared indices
    v1 = RNG.standard_normal(ix1.shape)
    w1 = random_projection((1, 2, 9))
    dv1 = F.max_unpool1d_backward(w1, ix1)
    check_grad(loss_and_grad(lambda a: F.max_unpool1d(a, ix1, 3, 3, 1, output_size=(9,)), v1, w1), v1, dv1)


INTERP = [
    dict(size=(7, 5), mode="bilinear", align_corners=False),
    dict(size=(7, 5), mode="bilinear", align_corners=True),
    dict(size=(3, 2), mode="bilinear", align_corners=False),  # downsampling
    dict(scale_factor=1.7, mode="bilinear"),
    dict(scale_factor=(2, 1.5), mode="bilinear", align_corners=True),
    dict(size=(1, 1), mode="bilinear", align_corners=True),
    dict(size=(7, 9), mode="nearest"),
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=0.6, mode="nearest"),
]


@pytest.mark.parametrize("kw", INTERP)
def test_interpolate_grads(kw):
    x = RNG.standard_normal((2, 2, 4, 5))
    fwd = lambda a: F.interpolate(a, **kw)  # noqa: E731
    w = random_projection(fwd(x).shape)
    dx = F.interpolate_backward(w, x.shape, **kw)
    check_grad(loss_and_grad(fwd, x, w), x, dx)


@pytest.mark.parametrize("kw", [dict(size=9, mode="linear"), dict(scale_factor=2.5, mode="linear", align_corners=True),
                                dict(size=4, mode="nearest")])
def test_interpolate_1d_grads(kw):
    x = RNG.standard_normal((2, 3, 6))
    fwd = lambda a: F.interpolate(a, **kw)  # noqa: E731
    w = random_projection(fwd(x).shape)
    check_grad(loss_and_grad(fwd, x, w), x, F.interpolate_backward(w, x.shape, **kw))


def test_noncontiguous_grads_inputs():
    x = distinct((2, 3, 8, 8))
    y, ix = F.max_pool2d(x, 2, return_indices=True)
    dy = RNG.standard_normal(y.shape[::-1]).T  # transposed view
    dx = F.max_pool2d_backward(dy, ix, x.shape)
    np.testing.assert_allclose(dx, F.max_pool2d_backward(np.ascontiguousarray(dy), ix, x.shape))
    assert np.count_nonzero(dx) == dy.size
    dxa = F.avg_pool2d_backward(dy, x.shape, 2)
    np.testing.assert_allclose(dxa, np.repeat(np.repeat(dy, 2, 2), 2, 3) / 4)


@pytest.mark.parametrize("k,s,p,ceil,inc", [(2, 2, 0, False, True), (3, 2, 1, False, True), (3, 2, 1, True, False),
                                            (4, 2, 2, True, True), (3, 1, 1, False, False), (2, 3, 1, True, True)])
@pytest.mark.parametrize("shape", [(2, 3, 9, 70), (1, 2, 5, 5), (1, 1, 1, 33)])
def test_float32_backward_matches_float64(k, s, p, ceil, inc, shape):
    """The float32 kernels (SIMD paths) against the float64 ones."""
    x = RNG.standard_normal(shape)
    if F.pool_output_size(shape[2], k, s, p, 1, ceil) < 1:
        pytest.skip("window larger than input")
    y64 = F.avg_pool2d(x, k, s, p, ceil, inc)
    dy = RNG.standard_normal(y64.shape)
    dx64 = F.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, inc)
    dx32 = F.avg_pool2d_backward(dy.astype(np.float32), x.shape, k, s, p, ceil, inc)
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-5, atol=1e-6)
    xd = distinct(shape)
    _, ix = F.max_pool2d(xd, k, s, p, 1, ceil, return_indices=True)
    np.testing.assert_allclose(F.max_pool2d_backward(dy.astype(np.float32), ix, x.shape),
                               F.max_pool2d_backward(dy, ix, x.shape), rtol=1e-5, atol=1e-6)
