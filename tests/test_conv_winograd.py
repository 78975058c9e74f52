"""The Winograd F(4x4, 3x3) path of conv2d (3x3 kernels, stride 1, dilation 1, groups 1,
at least 16 input and output channels): forward, input gradient and conv_transpose2d
against float64 NumPy references, over image sizes that leave partial 4x4 tiles.

Tolerances (errors over the largest |reference| value): float64 1e-12; float32 3e-5
(the transforms scale values by up to 100 before the channel sum; measured 2e-6 to
6e-6 at 16 to 256 channels, several times the direct sum's rounding).
"""

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from conv_refs import conv_ref, conv_transpose_ref
from helpers import check_grad, random_projection

TOL = {np.float32: 3e-5, np.float64: 1e-12}

# (N, C, O, H, W, padding): shapes the Winograd path takes (>= 128 tiles, outputs >= 4x4,
# channel counts and tile-row widths that score high enough, see winograd.rs); partial
# tiles at the bottom/right. Smaller problems go to im2col; the Rust unit tests run the
# Winograd kernel on those edge cases (1x1 images, tiny batches) directly.
SHAPES = [
    (6, 16, 16, 21, 15, 1),
    (1, 17, 16, 45, 47, 1),  # batch 1
    (3, 16, 17, 33, 33, 0),
    (4, 16, 16, 26, 28, 2),
    (3, 16, 18, 27, 31, "same"),
    (3, 17, 16, 25, 30, (0, 2)),
    (8, 64, 64, 13, 15, 1),
    (32, 128, 128, 5, 5, 1),
    (32, 17, 16, 5, 13, 1),
    (22, 16, 16, 7, 15, 1),
    (4, 32, 32, 21, 25, 3),  # padding beyond the kernel: whole tiles of zeros read
]


def _scaled_err(got, ref):
    return np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300)


def _data(n, c, o, h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_float64_reference(shape, dtype):
    n, c, o, h, w, p = shape
    x, wt, b = _data(n, c, o, h, w, 0)
    ref = conv_ref(x, wt, b, padding=p)
    y = F.conv2d(x.astype(dtype), wt.astype(dtype), b.astype(dtype), padding=p)
    assert y.dtype == dtype and y.shape == ref.shape
    assert _scaled_err(y, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_input_gradient_matches_float64_reference(shape, dtype):
    n, c, o, h, w, p = shape
    x, wt, _ = _data(n, c, o, h, w, 1)
    y = conv_ref(x, wt, padding=p)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    pad = 1 if p == "same" else p
    ref = conv_transpose_ref(dy, wt, padding=pad)  # the adjoint of the convolution
    dx, dw, db = F.conv2d_backward(dy.astype(dtype), x.astype(dtype), wt.astype(dtype), padding=p)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert _scaled_err(dx, ref) < TOL[dtype]
    # the weight gradient (im2col path) is unchanged
    assert _scaled_err(dw, conv_ref(x.transpose(1, 0, 2, 3), dy.transpose(1, 0, 2, 3), padding=pad).transpose(1, 0, 2, 3)) < TOL[dtype]


@pytest.mark.parametrize("padding", [0, 1, 2, 3])
def test_conv_transpose2d_stride1_3x3(padding):
    # its forward is the convolution's input gradient; padding 3 makes the Winograd
    # window start inside the input (negative padding)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 64, 23, 22))
    w = rng.standard_normal((64, 64, 3, 3))
    b = rng.standard_normal(64)
    ref = conv_transpose_ref(x, w, b, padding=padding)
    for dtype in (np.float32, np.float64):
        y = F.conv_transpose2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), padding=padding)
        assert y.shape == ref.shape
        assert _scaled_err(y, ref) < TOL[dtype]


def test_gradient_check_float64():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 16, 5, 6))
    w = rng.standard_normal((64, 16, 3, 3)) * 0.3
    y = F.conv2d(x, w, padding=1)
    proj = random_projection(y.shape, seed=5)

    def loss():
        return float(np.sum(F.conv2d(x, w, padding=1) * proj))

    dx, _, _ = F.conv2d_backward(proj, x, w, padding=1, needs=("input",))
    check_grad(loss, x, dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_propagate_exactly_like_the_direct_sum(dtype):
    # Winograd's transforms would spread a NaN over whole 4x4 tiles and turn Inf into
    # NaN; non-finite inputs must instead give what the direct sum gives.
    x = np.zeros((3, 16, 24, 32), dtype)
    x[0, 3, 5, 6] = np.nan
    x[1, 2, 10, 20] = np.inf
    w = np.ones((16, 16, 3, 3), dtype)
    y = F.conv2d(x, w, padding=1)
    nan = np.zeros(y.shape, bool)
    nan[0, :, 4:7, 5:8] = True
    np.testing.assert_array_equal(np.isnan(y), nan)
    inf = np.zeros(y.shape, bool)
    inf[1, :, 9:12, 19:22] = True
    np.testing.assert_array_equal(np.isposinf(y), inf)
    assert (y[2] == 0).all()
    dy = np.zeros_like(y)
    dy[2, 4, 7, 9] = np.inf
    dx = F.conv2d_backward(dy, x, w, padding=1, needs=("input",))[0]
    expect = np.zeros(dx.shape, bool)
    expect[2, :, 6:9, 8:11] = True
    np.testing.assert_array_equal(np.isposinf(dx), expect)
    assert not np.isnan(dx).any()
    # finite data of the same shapes stays on the fast path and correct
    w2 = np.random.default_rng(0).standard_normal(w.shape).astype(dtype)
    x2 = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    assert _scaled_err(F.conv2d(x2, w2, padding=1), conv_ref(x2, w2, padding=1)) < TOL[dtype]


def test_same_bits_for_one_and_two_threads():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 16, 28, 31)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 24, 28, 31)).astype(np.float32)
    old = oxinet.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            oxinet.set_num_threads(t)
            out.append((F.conv2d(x, w, padding=1), F.conv2d_backward(dy, x, w, padding=1, needs=("input",))[0]))
    finally:
        oxinet.set_num_threads(old)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
