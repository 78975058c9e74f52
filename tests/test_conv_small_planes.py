"""Two conv paths for the small planes of a network's last stages (conv/dense.rs and the
direct input gradient in conv/direct.rs), against float64 NumPy references:

- dense: planes smaller than the kernel (3x3 over 2x2 or 1x1, stride 1 or 2, a 1-D
  length-2 signal with a 5-tap kernel) as one product with the unfolded weights;
- direct input gradient: stride-1 convolutions whose input gradient runs as a forward
  direct convolution of dy with the flipped, transposed weights (many taps, small planes).

Both also through nn.Conv2d (whose batched small-plane path leaves dense shapes to the
ops), finite differences in float64, NaN/Inf as NumPy's zero-padded sum gives them, one
vs two threads, and the OXINET_DENSE_CONV / OXINET_DIRECT_CONV switches (read once per
process, so the switched runs are subprocesses).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from oxinet import _core
from conv_refs import conv_ref, same_pads
from helpers import check_grad, random_projection

TOL = {np.float32: 2e-5, np.float64: 1e-12}

# (N, C, O, H, W, kernel, stride, padding): every input position reaches every output
DENSE = [
    (3, 8, 12, 2, 2, 3, 1, 1),  # ResNet's 2x2 stage
    (2, 16, 8, 1, 1, 3, 1, 1),  # its 1x1 stage: only the centre tap is real
    (3, 8, 20, 2, 2, 3, 2, 1),  # 2x2 -> 1x1, stride 2
    (1, 5, 7, 2, 1, 3, 1, 1),  # batch 1, a 2x1 plane
    (2, 3, 4, 1, 2, (1, 5), 1, (0, 2)),  # a length-2 row with a 5-tap kernel
]
# stride-1 shapes the direct input gradient takes (K = C_out * taps > 256 or small planes)
DIRECT_DX = [
    (2, 16, 32, 8, 8, 3, 1, 1),
    (3, 32, 20, 5, 7, 3, 1, 1),  # odd sizes, O = 20
    (2, 9, 40, 6, 6, 3, 1, 2),  # padding 2 (the flipped conv's padding 0)
    (2, 12, 24, 7, 9, (3, 2), 1, "same"),  # even kernel: asymmetric padding
    (1, 70, 8, 4, 4, 3, 1, 1),  # one image, K = 72, C_in 70 outputs
]


def _data(n, c, o, h, w, k, seed, dtype=np.float64):
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((o, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b


def _err(got, ref):
    return np.abs(np.asarray(got, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30)


def _pads(k, padding):
    """(lo, hi) padding per axis for a 2-D kernel k."""
    if padding == "same":
        return same_pads(k, (1, 1))
    pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return pad, pad


def _windows(x_shape, w_shape, stride, padding):
    """Per tap (i, j): the padded input slices its outputs read, and the padding lo."""
    k = w_shape[2:]
    s = (stride, stride) if isinstance(stride, int) else tuple(stride)
    lo, hi = _pads(k, padding)
    hp, wp = x_shape[2] + lo[0] + hi[0], x_shape[3] + lo[1] + hi[1]
    oh, ow = (hp - k[0]) // s[0] + 1, (wp - k[1]) // s[1] + 1
    taps = {(i, j): (slice(i, i + s[0] * (oh - 1) + 1, s[0]), slice(j, j + s[1] * (ow - 1) + 1, s[1]))
            for i in range(k[0]) for j in range(k[1])}
    return taps, lo, (hp, wp)


def _dx_ref(dy, w, x_shape, stride, padding):
    """dx: each tap scatters w[:, :, i, j]^T dy onto the padded input, then the padding
    is cut off (float64)."""
    dy, w = np.asarray(dy, np.float64), np.asarray(w, np.float64)
    taps, lo, (hp, wp) = _windows(x_shape, w.shape, stride, padding)
    dxp = np.zeros(x_shape[:2] + (hp, wp))
    for (i, j), (rows, cols) in taps.items():
        dxp[:, :, rows, cols] += np.einsum("nohw,oc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, lo[0]:lo[0] + x_shape[2], lo[1]:lo[1] + x_shape[3]]


def _dw_ref(dy, x, w_shape, stride, padding):
    """dw[o, c, i, j] = sum of dy times the zero-padded input under tap (i, j) (float64)."""
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    taps, lo, (hp, wp) = _windows(x.shape, w_shape, stride, padding)
    xp = np.zeros(x.shape[:2] + (hp, wp))
    xp[:, :, lo[0]:lo[0] + x.shape[2], lo[1]:lo[1] + x.shape[3]] = x
    dw = np.zeros(w_shape)
    for (i, j), (rows, cols) in taps.items():
        dw[:, :, i, j] = np.einsum("nohw,nchw->oc", dy, xp[:, :, rows, cols])
    return dw


def _geometry(x, w, stride, padding):
    s = (stride, stride) if isinstance(stride, int) else stride
    if padding == "same":
        return None
    p = (padding, padding) if isinstance(padding, int) else padding
    return ((x.shape[0], x.shape[1], 1) + x.shape[2:], (w.shape[0], w.shape[1], 1) + w.shape[2:],
            (1,) + tuple(s), (1, 1, 1), (0,) + tuple(p), (0,) + tuple(p), 1)


@pytest.mark.parametrize("shape", DENSE)
def test_dense_dispatch_applies(shape):
    x, w, _ = _data(*shape[:6], seed=0)
    assert _core.conv_uses_dense_path(*_geometry(x, w, shape[6], shape[7]))


@pytest.mark.parametrize("shape", [(2, 8, 8, 4, 4, 3, 1, 1), (2, 8, 8, 3, 1, 3, 1, 1), (2, 8, 8, 2, 2, 1, 1, 0)])
def test_dense_dispatch_declines(shape):
    """4x4: more input positions than half the taps; 3x1 with padding 1: output row 0
    never reads input row 2; a 1x1 kernel: pointwise already."""
    x, w, _ = _data(*shape[:6], seed=0)
    assert not _core.conv_uses_dense_path(*_geometry(x, w, shape[6], shape[7]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", DENSE + DIRECT_DX)
def test_forward_and_gradients_match_float64_references(shape, dtype):
    n, c, o, h, w_, k, s, p = shape
    x, w, b = _data(n, c, o, h, w_, k, seed=1)
    ref = conv_ref(x, w, b, stride=s, padding=p)
    dy = np.random.default_rng(2).standard_normal(ref.shape)
    y = F.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), stride=s, padding=p)
    assert y.dtype == dtype and y.shape == ref.shape
    assert _err(y, ref) < TOL[dtype]
    dx, dw, db = F.conv2d_backward(dy.astype(dtype), x.astype(dtype), w.astype(dtype), stride=s, padding=p,
                                   needs=("input", "weight", "bias"))
    assert _err(dx, _dx_ref(dy, w, x.shape, s, p)) < TOL[dtype]
    assert _err(dw, _dw_ref(dy, x, w.shape, s, p)) < TOL[dtype]
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("shape", DENSE[:3] + DIRECT_DX[:2])
def test_finite_differences(shape):
    n, c, o, h, w_, k, s, p = shape
    x, w, b = _data(n, c, o, h, w_, k, seed=3)
    proj = random_projection(conv_ref(x, w, b, stride=s, padding=p).shape, seed=4)
    dx, dw, _ = F.conv2d_backward(proj, x, w, stride=s, padding=p, needs=("input", "weight"))
    check_grad(lambda: float((F.conv2d(x, w, b, stride=s, padding=p) * proj).sum()), x, dx)
    check_grad(lambda: float((F.conv2d(x, w, b, stride=s, padding=p) * proj).sum()), w, dw)


@pytest.mark.parametrize("shape", [DENSE[0], DENSE[2], DIRECT_DX[0]])
def test_nn_conv2d_trains_through_these_paths(shape):
    """nn.Conv2d's forward/backward equal the ops' on these shapes (the batched path
    leaves dense shapes to the ops)."""
    n, c, o, h, w_, k, s, p = shape
    x, w, b = _data(n, c, o, h, w_, k, seed=5, dtype=np.float32)
    conv = oxinet.nn.Conv2d(c, o, k, stride=s, padding=p)
    conv.weight.data[...] = w
    conv.bias.data[...] = b
    xt = oxinet.tensor(x, requires_grad=True)
    y = conv(xt)
    dy = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
    y.backward(oxinet.tensor(dy))
    np.testing.assert_allclose(y.numpy(), F.conv2d(x, w, b, stride=s, padding=p), rtol=1e-5, atol=1e-5)
    dx, dw, db = F.conv2d_backward(dy, x, w, stride=s, padding=p, needs=("input", "weight", "bias"))
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv.weight.grad.numpy(), dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv.bias.grad.numpy(), db, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_inputs_propagate_like_numpy(dtype):
    x, w, b = _data(2, 6, 5, 2, 2, 3, seed=7)
    x[0, 1, 0, 1] = np.inf
    x[1, 2, 1, 0] = np.nan
    x[1, 3, 0, 0] = -np.inf
    with np.errstate(invalid="ignore"):
        ref = conv_ref(x, w, b, padding=1)
    y = F.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), padding=1)
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(y), test(ref))
    assert np.isnan(ref).any()


@pytest.mark.parametrize("shape", [DENSE[0], DENSE[1], DIRECT_DX[0]])
def test_infinite_weight_meets_padding_as_in_numpy(shape):
    """These paths never multiply by padding; an infinite weight sends the call to im2col,
    where 0 * inf = NaN at the padded border as in the zero-padded NumPy sum."""
    n, c, o, h, w_, k, s, p = shape
    x, w, b = _data(n, c, o, h, w_, k, seed=8)
    w[1, 0, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        ref = conv_ref(x, w, b, stride=s, padding=p)
        dy = np.ones(ref.shape)
        dx_ref = _dx_ref(dy, w, x.shape, s, p)
    y = F.conv2d(x, w, b, stride=s, padding=p)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
    dx = F.conv2d_backward(dy, x, w, stride=s, padding=p, needs=("input",))[0]
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(dx_ref))
    np.testing.assert_array_equal(np.isinf(dx), np.isinf(dx_ref))


def test_infinite_output_gradient_meets_padding_as_in_numpy():
    x, w, _ = _data(2, 4, 3, 2, 2, 3, seed=9)
    dy = np.ones((2, 3, 2, 2))
    dy[1, 2, 0, 1] = np.inf
    with np.errstate(invalid="ignore"):
        ref = _dw_ref(dy, x, w.shape, 1, 1)
    dw = F.conv2d_backward(dy, x, w, padding=1, needs=("weight",))[1]
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(ref))
    assert np.isnan(ref).any() and np.isinf(ref).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_for_one_and_two_threads(dtype):
    cases = []
    for shape in (DENSE[0], DENSE[2], DIRECT_DX[0]):
        n, c, o, h, w_, k, s, p = shape
        x, w, b = _data(32, c * 8, o * 8, h, w_, k, seed=11, dtype=dtype)
        dy = np.random.default_rng(12).standard_normal(F.conv2d(x, w, b, stride=s, padding=p).shape).astype(dtype)
        cases.append((x, w, b, dy, s, p))
    results = {}
    for threads in (1, 2):
        oxinet.set_num_threads(threads)
        try:
            results[threads] = [(F.conv2d(x, w, b, stride=s, padding=p),
                                 *F.conv2d_backward(dy, x, w, stride=s, padding=p, needs=("input", "weight"))[:2])
                                for x, w, b, dy, s, p in cases]
        finally:
            oxinet.set_num_threads(2)
    for one, two in zip(results[1], results[2]):
        for u, v in zip(one, two):
            np.testing.assert_array_equal(u, v)


_SWITCH_SCRIPT = r"""
import json, sys
import numpy as np
import oxinet.ops as F
out = {}
for i, (n, c, o, h, w_, k, s, p) in enumerate(json.loads(sys.argv[1])):
    rng = np.random.default_rng(i)
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((o, c, k, k)).astype(np.float32)
    y = F.conv2d(x, w, stride=s, padding=p)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw = F.conv2d_backward(dy, x, w, stride=s, padding=p, needs=("input", "weight"))[:2]
    out[f"y{i}"], out[f"dx{i}"], out[f"dw{i}"] = y, dx, dw
np.savez(sys.argv[2], **out)
"""


def _run(env, cases, path):
    subprocess.run([sys.executable, "-c", _SWITCH_SCRIPT, json.dumps(cases), str(path)],
                   env=dict(os.environ, **env), check=True)
    with np.load(path) as z:
        return {key: z[key] for key in z.files}


def test_switches_turn_the_paths_off_with_the_same_results(tmp_path):
    """OXINET_DENSE_CONV=0 / OXINET_DIRECT_CONV=0 take im2col instead: results agree to
    float32 rounding and differ in bits (so the default run did take the new paths)."""
    dense = [list(DENSE[0]), list(DENSE[2])]
    direct = [[2, 16, 32, 8, 8, 3, 1, 1]]
    on = _run({}, dense + direct, tmp_path / "on.npz")
    off = _run({"OXINET_DENSE_CONV": "0", "OXINET_DIRECT_CONV": "0"}, dense + direct, tmp_path / "off.npz")
    for key in on:
        np.testing.assert_allclose(on[key], off[key], rtol=1e-4, atol=1e-4 * np.abs(off[key]).max())
    for i in range(len(dense)):
        assert any((on[f"{kind}{i}"] != off[f"{kind}{i}"]).any() for kind in ("y", "dx", "dw")), dense[i]
    assert (on[f"dx{len(dense)}"] != off[f"dx{len(dense)}"]).any(), "direct input gradient not taken"
