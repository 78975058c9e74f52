"""The direct ("implicit GEMM") conv2d paths for few taps per output (2-D, groups 1;
forward for K = C_in * kh * kw from 32 to 4608 or at most 8 output channels, weight
gradient for K <= 256 and at most 32 output channels; see conv/direct.rs):
against float64 NumPy references over shapes that exercise its edges (partial pixel
blocks, output channels not a multiple of 16 and above 64, padding 0/1/3/'same' with
even kernels, padding wider than the kernel, strides 1/2/3, dilation 2, batch 1,
one-row images), NaN/Inf propagation, thread-count independence, and which path the
dispatch picks (through the OXINET_DIRECT_CONV switch, read once per process).

Tolerances (errors over the largest |reference| value): float64 1e-12, float32 1e-5.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from conv_refs import conv_ref, same_pads, tup
from helpers import check_grad, random_projection

TOL = {np.float32: 1e-5, np.float64: 1e-12}

# (N, C, O, H, W, kernel, stride, padding, dilation): all taken by the direct path.
SHAPES = [
    (2, 6, 16, 14, 14, 5, 1, 0, 1),  # LeNet's second conv: rows of 10 pixels
    (1, 3, 64, 23, 29, 7, 2, 3, 1),  # ResNet stem, batch 1, odd sizes
    (3, 3, 8, 13, 11, 4, 1, "same", 1),  # even kernel, asymmetric 'same', O = 8
    (2, 4, 17, 13, 31, 3, 3, 1, 1),  # stride 3, O = 16 + 1
    (2, 6, 33, 12, 15, (3, 2), 1, (2, 1), 2),  # dilation 2, rectangular kernel
    (2, 2, 100, 9, 40, 5, 1, (0, 2), 1),  # two channel blocks (64 + 36)
    (2, 5, 128, 6, 7, 3, (2, 1), (4, 3), (1, 2)),  # padding wider than the kernel
    (2, 1, 6, 28, 28, 5, 1, 2, 1),  # LeNet's first conv: K = 25, O = 6
    (2, 40, 5, 1, 7, 1, 2, 0, 1),  # one-row image, 1x1 kernel with stride 2
    (1, 4, 20, 17, 19, 3, 1, 1, 2),  # dilation 2, odd widths
    (2, 16, 24, 9, 9, 2, 2, 0, 1),  # K = 64, even kernel, stride 2
    (1, 3, 64, 3, 3, 7, 1, 3, 1),  # output smaller than the kernel's padding
]


def _scaled_err(got, ref):
    return np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300)


def _data(n, c, o, h, w, k, seed):
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, kh, kw)), rng.standard_normal(o)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_float64_reference(shape, dtype):
    n, c, o, h, w, k, s, p, d = shape
    x, wt, b = _data(n, c, o, h, w, k, 0)
    ref = conv_ref(x, wt, b, stride=s, padding=p, dilation=d)
    y = F.conv2d(x.astype(dtype), wt.astype(dtype), b.astype(dtype), stride=s, padding=p, dilation=d)
    assert y.dtype == dtype and y.shape == ref.shape
    assert _scaled_err(y, ref) < TOL[dtype]
    y0 = F.conv2d(x.astype(dtype), wt.astype(dtype), stride=s, padding=p, dilation=d)
    assert _scaled_err(y0, ref - b.reshape(1, -1, 1, 1)) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_inputs(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 30, 34)).astype(dtype)[::2, :, ::2, 1::2]  # (2, 3, 15, 17)
    w = np.ascontiguousarray(rng.standard_normal((16, 5, 5, 3)).astype(dtype).transpose(0, 3, 1, 2))
    w = w[:, :, ::-1, :]  # negative strides
    b = rng.standard_normal(32).astype(dtype)[::2]
    assert not x.flags.c_contiguous and not w.flags.c_contiguous and not b.flags.c_contiguous
    y = F.conv2d(x, w, b, stride=2, padding=1)
    assert _scaled_err(y, conv_ref(x, w, b, stride=2, padding=1)) < TOL[dtype]


def test_mixed_dtypes_promote_to_float64():
    x, w, b = _data(2, 3, 16, 12, 12, 5, 4)
    y = F.conv2d(x.astype(np.float32), w, b.astype(np.float32), padding=2)
    assert y.dtype == np.float64
    assert _scaled_err(y, conv_ref(x.astype(np.float32), w, b.astype(np.float32), padding=2)) < 1e-12


def test_empty_batch_gives_empty_output():
    w = np.ones((16, 6, 5, 5), np.float32)
    y = F.conv2d(np.zeros((0, 6, 14, 14), np.float32), w)
    assert y.shape == (0, 16, 10, 10) and y.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_values_propagate(dtype):
    x, w, b = _data(2, 3, 20, 16, 18, 4, 5)
    x[0, 0, 3, 4] = np.nan
    x[0, 1, 10, 10] = np.inf
    x[1, 2, 0, 0] = -np.inf
    x[1, 0, 12, 3] = np.inf
    x[1, 1, 12, 5] = -np.inf  # +inf and -inf in the same windows: NaN
    with np.errstate(invalid="ignore"):
        ref = conv_ref(x, w, b, padding="same")
    y = F.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), padding="same")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(ref))
    assert np.isnan(ref).any() and np.isposinf(ref).any() and np.isneginf(ref).any()
    fin = np.isfinite(ref)
    assert _scaled_err(y[fin], ref[fin]) < TOL[dtype]


def test_infinite_weight_times_padding_is_nan_like_numpy():
    x, w, b = _data(1, 2, 16, 7, 9, 3, 6)
    w[3, 1, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        ref = conv_ref(x, w, b, padding=1)  # 0 * inf = NaN at the padded border
    y = F.conv2d(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), padding=1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_for_one_and_two_threads(dtype):
    rng = np.random.default_rng(7)
    cases = [
        (rng.standard_normal((3, 3, 45, 51)), rng.standard_normal((64, 3, 7, 7)), dict(stride=2, padding=3)),
        (rng.standard_normal((9, 6, 14, 14)), rng.standard_normal((16, 6, 5, 5)), {}),
        (rng.standard_normal((5, 3, 33, 30)), rng.standard_normal((8, 3, 4, 4)), dict(padding="same")),
    ]
    old = oxinet.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            oxinet.set_num_threads(t)
            out.append([F.conv2d(x.astype(dtype), w.astype(dtype), **kw) for x, w, kw in cases])
    finally:
        oxinet.set_num_threads(old)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


# Which path runs: the same script under OXINET_DIRECT_CONV=portable (direct path with
# the portable kernel: multiply then add, different rounding from the fused
# multiply-adds of im2col + GEMM) and =0 (im2col + GEMM).
_DISPATCH_SCRIPT = r"""
import json, sys
import numpy as np
import oxinet.ops as F
cases = json.loads(sys.argv[1])
out = {}
for i, (n, c, o, h, k, s, p) in enumerate(cases):
    rng = np.random.default_rng(i)
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = rng.standard_normal((o, c, k, k), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    y = F.conv2d(x, w, b, stride=s, padding=p)
    out[str(i)] = y
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    out["dw" + str(i)] = F.conv2d_backward(dy, x, w, stride=s, padding=p, needs=("weight",))[1]
np.savez(sys.argv[2], **out)
"""

# the benchmark rows (smaller batches: the dispatch depends on the channels and kernel)
DIRECT_CASES = [
    (2, 6, 16, 14, 5, 1, 0),  # conv2d fwd N256 C6 14x14 k5 O16
    (1, 3, 64, 224, 7, 2, 3),  # conv2d fwd N8 C3 224x224 k7 s2 p3 O64
    (2, 3, 8, 64, 4, 1, "same"),  # conv2d fwd N64 C3 64x64 k4 same O8
    (1, 64, 64, 12, 3, 1, 1),  # many taps (K = 576) on a small plane
    (1, 32, 16, 12, 3, 1, 1),  # K = 288, a 3x3 Winograd leaves (few tiles)
    (1, 17, 16, 12, 4, 1, 0),  # K = 272, even kernel
]
# left to im2col: few taps and many channels, more than 128 output channels, K > 4608
OTHER_CASES = [
    (2, 3, 16, 32, 3, 1, 1),
    (1, 8, 160, 6, 3, 1, 1),
    (1, 520, 8, 4, 3, 1, 1),
]


def _run_mode(mode, cases, path):
    env = dict(os.environ, OXINET_DIRECT_CONV=mode)
    subprocess.run([sys.executable, "-c", _DISPATCH_SCRIPT, json.dumps(cases), str(path)], env=env, check=True)
    with np.load(path) as z:
        return [(z[str(i)], z["dw" + str(i)]) for i in range(len(cases))]


def test_dispatch_picks_the_direct_path_for_the_benchmark_shapes(tmp_path):
    cases = DIRECT_CASES + OTHER_CASES
    portable = _run_mode("portable", cases, tmp_path / "portable.npz")
    im2col = _run_mode("0", cases, tmp_path / "im2col.npz")
    here = _run_mode("1", cases, tmp_path / "default.npz")
    for i, case in enumerate(cases):
        n, c, o, h, k, s, p = case
        rng = np.random.default_rng(i)
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((o, c, k, k), dtype=np.float32)
        b = rng.standard_normal(o, dtype=np.float32)
        ref = conv_ref(x, w, b, stride=s, padding=p)
        dy = rng.standard_normal(ref.shape, dtype=np.float32)
        dw_ref = dw_reference(dy, x, w.shape, s, p, 1)
        for y, dw in (portable[i], im2col[i], here[i]):
            assert _scaled_err(y, ref) < 1e-5, case
            assert _scaled_err(dw, dw_ref) < 1e-5, case
        if case in DIRECT_CASES:
            assert (portable[i][0] != im2col[i][0]).mean() > 0.1, f"{case} did not take the direct path"
        else:
            np.testing.assert_array_equal(portable[i][0], im2col[i][0], err_msg=f"{case} took the direct path")
        if case in WGRAD_CASES:
            assert (portable[i][1] != im2col[i][1]).mean() > 0.1, f"{case}: weight gradient not direct"
        else:
            np.testing.assert_array_equal(portable[i][1], im2col[i][1], err_msg=f"{case}: weight gradient direct")


# ------------------------------------------------------------------ weight gradient

# weight gradients taken by the direct path (K <= 256, at most 32 output channels)
WGRAD_CASES = [DIRECT_CASES[0], DIRECT_CASES[2], OTHER_CASES[0]]


def dw_reference(dy, x, wshape, stride=1, padding=0, dilation=1):
    """dw[o, c, i, j] = sum over n, y, x of dy[n, o, y, x] * xpad[n, c, y*s + i*d, x*s + j*d]."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    kh, kw = wshape[2:]
    (sy, sx), (dh, dw_) = tup(stride, 2), tup(dilation, 2)
    if padding == "same":
        lo, hi = same_pads((kh, kw), (dh, dw_))
    else:
        lo = hi = tup(padding, 2)
    xp = np.pad(x, ((0, 0), (0, 0), (lo[0], hi[0]), (lo[1], hi[1])))
    oh, ow = dy.shape[2:]
    out = np.zeros(wshape)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, :, i * dh : i * dh + sy * (oh - 1) + 1 : sy, j * dw_ : j * dw_ + sx * (ow - 1) + 1 : sx]
            out[:, :, i, j] = np.einsum("noyx,ncyx->oc", dy, win)
    return out


# (N, C, O, H, W, kernel, stride, padding, dilation): weight gradient through the direct path
WSHAPES = [
    (2, 6, 16, 14, 14, 5, 1, 0, 1),  # LeNet: rows of 10 pixels (masked vectors)
    (1, 3, 8, 23, 29, 7, 2, 3, 1),  # stem-like, batch 1
    (3, 3, 8, 13, 11, 4, 1, "same", 1),
    (2, 4, 17, 13, 37, 3, 3, 1, 1),  # O = 4k + 1, rows of 13 pixels
    (2, 6, 30, 12, 40, (3, 2), 1, (2, 1), 2),  # K = 36 = 6 blocks, rows of 40 (16 + 16 + 8)
    (2, 2, 32, 9, 33, 5, 1, (0, 2), 1),
    (2, 5, 7, 6, 7, 3, (2, 1), (4, 3), (1, 2)),  # padding wider than the kernel, K = 45
    (5, 1, 6, 28, 28, 5, 1, 2, 1),
    (2, 3, 5, 1, 9, 1, 2, 0, 1),  # one-row image, K = 3
    (1, 28, 16, 10, 10, 3, 1, 1, 1),  # K = 252
    (40, 3, 4, 5, 6, 3, 1, 1, 1),  # many small images in one item
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", WSHAPES, ids=str)
def test_weight_grad_matches_float64_reference(shape, dtype):
    n, c, o, h, w, k, s, p, d = shape
    x, wt, _ = _data(n, c, o, h, w, k, 1)
    y = conv_ref(x, wt, stride=s, padding=p, dilation=d)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    ref = dw_reference(dy, x, wt.shape, s, p, d)
    dx, dw, db = F.conv2d_backward(dy.astype(dtype), x.astype(dtype), wt.astype(dtype), stride=s, padding=p,
                                   dilation=d, needs=("weight", "bias"))
    assert dx is None and dw.dtype == dtype and dw.shape == wt.shape
    assert _scaled_err(dw, ref) < TOL[dtype]
    assert _scaled_err(db, dy.sum(axis=(0, 2, 3))) < TOL[dtype]


@pytest.mark.parametrize(
    "shape",
    [
        (2, 3, 5, 6, 7, 3, 1, 1, 1),
        (1, 2, 6, 7, 9, (2, 3), 2, "valid", 1),
        (2, 2, 3, 6, 6, 4, 1, "same", 1),
        (1, 3, 4, 9, 8, 3, (2, 3), 2, 2),
    ],
    ids=str,
)
def test_weight_grad_finite_differences(shape):
    n, c, o, h, w, k, s, p, d = shape
    x, wt, _ = _data(n, c, o, h, w, k, 8)
    y = F.conv2d(x, wt, stride=s, padding=p, dilation=d)
    proj = random_projection(y.shape, seed=9)
    _, dw, _ = F.conv2d_backward(proj, x, wt, stride=s, padding=p, dilation=d, needs=("weight",))
    check_grad(lambda: np.sum(proj * F.conv2d(x, wt, stride=s, padding=p, dilation=d)), wt, dw)


def test_weight_grad_non_contiguous_inputs():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 3, 30, 34))[::2, :, ::2, 1::2]
    w = rng.standard_normal((16, 3, 5, 5))
    y = conv_ref(x, w, stride=2, padding=1)
    dy = rng.standard_normal(y.shape + (2,))[..., 0]
    assert not x.flags.c_contiguous and not dy.flags.c_contiguous
    _, dw, _ = F.conv2d_backward(dy.astype(np.float32), x.astype(np.float32), w.astype(np.float32), stride=2,
                                 padding=1, needs=("weight",))
    assert _scaled_err(dw, dw_reference(dy, x, w.shape, 2, 1)) < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_grad_non_finite_values_propagate(dtype):
    x, w, _ = _data(2, 3, 8, 12, 13, 3, 11)
    dy = np.random.default_rng(12).standard_normal((2, 8, 12, 13))
    x[0, 1, 4, 5] = np.nan
    x[1, 2, 7, 7] = np.inf
    dy[1, 3, 0, 0] = np.inf  # times the zero padding: NaN, as in NumPy
    with np.errstate(invalid="ignore"):
        ref = dw_reference(dy, x, w.shape, 1, 1)
    _, dw, _ = F.conv2d_backward(dy.astype(dtype), x.astype(dtype), w.astype(dtype), padding=1, needs=("weight",))
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(dw), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(dw), np.isneginf(ref))
    assert np.isnan(ref).any() and np.isinf(ref).any() and np.isfinite(ref).any()
    fin = np.isfinite(ref)
    assert _scaled_err(dw[fin], ref[fin]) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_grad_same_bits_for_one_and_two_threads(dtype):
    rng = np.random.default_rng(13)
    cases = [
        (rng.standard_normal((64, 6, 14, 14)), (16, 6, 5, 5), {}),
        (rng.standard_normal((3, 3, 45, 51)), (8, 3, 7, 7), dict(stride=2, padding=3)),
        (rng.standard_normal((9, 3, 33, 30)), (8, 3, 4, 4), dict(padding="same")),
    ]
    data = []
    for x, ws, kw in cases:
        w = rng.standard_normal(ws)
        dy = rng.standard_normal(F.conv2d(x, w, **kw).shape)
        data.append((x.astype(dtype), w.astype(dtype), dy.astype(dtype), kw))
    old = oxinet.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            oxinet.set_num_threads(t)
            out.append([F.conv2d_backward(dy, x, w, needs=("weight",), **kw)[1] for x, w, dy, kw in data])
    finally:
        oxinet.set_num_threads(old)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
