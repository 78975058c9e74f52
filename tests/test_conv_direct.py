"""The direct ("implicit GEMM") conv2d forward path for few taps per output (2-D, groups 1,
K = C_in * kh * kw from 32 to 256, or at most 8 output channels; see conv/direct.rs):
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
from conv_refs import conv_ref

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
    out[str(i)] = F.conv2d(x, w, b, stride=s, padding=p)
np.savez(sys.argv[2], **out)
"""

# the benchmark rows (smaller batches: the dispatch depends on the channels and kernel)
DIRECT_CASES = [
    (2, 6, 16, 14, 5, 1, 0),  # conv2d fwd N256 C6 14x14 k5 O16
    (1, 3, 64, 224, 7, 2, 3),  # conv2d fwd N8 C3 224x224 k7 s2 p3 O64
    (2, 3, 8, 64, 4, 1, "same"),  # conv2d fwd N64 C3 64x64 k4 same O8
]
# left to im2col / Winograd: few taps and many channels, K > 256, Winograd's 3x3
OTHER_CASES = [
    (2, 3, 16, 32, 3, 1, 1),
    (1, 64, 64, 12, 3, 1, 1),
    (1, 32, 16, 12, 3, 1, 1),
    (1, 17, 16, 12, 4, 1, 0),
]


def _run_mode(mode, cases, path):
    env = dict(os.environ, OXINET_DIRECT_CONV=mode)
    subprocess.run([sys.executable, "-c", _DISPATCH_SCRIPT, json.dumps(cases), str(path)], env=env, check=True)
    with np.load(path) as z:
        return [z[str(i)] for i in range(len(cases))]


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
        for y in (portable[i], im2col[i], here[i]):
            assert _scaled_err(y, ref) < 1e-5, case
        if case in DIRECT_CASES:
            assert (portable[i] != im2col[i]).mean() > 0.1, f"{case} did not take the direct path"
        else:
            np.testing.assert_array_equal(portable[i], im2col[i], err_msg=f"{case} took the direct path")
