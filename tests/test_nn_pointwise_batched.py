"""nn.functional.conv2d's batched path for convolutions with small output planes (one GEMM
over the batch with channels outermost; 1x1 directly, others through im2col/col2im) against
ops.conv2d / ops.conv2d_backward (the per-image path), finite differences, thread counts,
and the cases that must keep the general path."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn, ops
from oxinet.nn import _spatial_fn as SF


def _run(x, w, b, **kw):
    xt = ox.tensor(x, dtype=x.dtype, requires_grad=True)
    wt = ox.tensor(w, dtype=w.dtype, requires_grad=True)
    bt = None if b is None else ox.tensor(b, dtype=b.dtype, requires_grad=True)
    y = nn.functional.conv2d(xt, wt, bt, **kw)
    g = np.random.default_rng(9).standard_normal(y.shape).astype(y.dtype)
    y.backward(ox.tensor(g, dtype=y.dtype))
    return y.numpy(), g, xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy()


CASES = [
    # (n, c_in, c_out, h, w, bias, kwargs[, kernel (kh, kw)])
    (2, 7, 5, 1, 1, False, {}),
    (3, 16, 40, 2, 2, True, {}),
    (4, 24, 6, 3, 5, True, dict(stride=(1, 1), padding="same")),
    (2, 9, 11, 8, 8, False, dict(padding="valid", dilation=2)),
    (5, 3, 4, 4, 4, True, dict(padding=(0, 0))),
    # im2col: 3x3 padded (ResNet's 4x4 stage; its 2x2 and 1x1 stages take the ops' dense
    # path), strided, dilated, rectangular, 1x1 strided
    (3, 6, 5, 3, 3, False, dict(padding=1), (3, 3)),
    (2, 5, 7, 4, 4, True, dict(padding=1), (3, 3)),
    (4, 3, 4, 8, 8, False, dict(stride=2, padding=1), (3, 3)),
    (2, 4, 3, 7, 9, True, dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1)), (3, 2)),
    (3, 8, 6, 8, 8, False, dict(stride=2), (1, 1)),
    (2, 3, 4, 9, 7, False, dict(stride=3), (5, 5)),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep_cols", [True, False])
def test_batched_pointwise_matches_the_conv_ops(case, dtype, keep_cols, monkeypatch):
    """keep_cols: im2col columns saved for the backward, or rebuilt there from the input."""
    monkeypatch.setattr(SF, "_KEEP_COLS_BYTES", SF._KEEP_COLS_BYTES if keep_cols else 0)
    n, ci, co, h, wd, bias, kw = case[:7]
    kh, kwd = case[7] if len(case) > 7 else (1, 1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, ci, h, wd)).astype(dtype)
    w = rng.standard_normal((co, ci, kh, kwd)).astype(dtype)
    b = rng.standard_normal(co).astype(dtype) if bias else None
    calls = []
    real = ops.matmul
    monkeypatch.setattr(SF.ops, "matmul", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    im2cols = []
    real_cols = SF._im2col_batched
    monkeypatch.setattr(SF, "_im2col_batched", lambda *a: (im2cols.append(1), real_cols(*a))[1])
    y, g, dx, dw, db = _run(x, w, b, **kw)
    assert len(calls) == 3  # forward, input and weight gradients went through the GEMM
    pointwise = (kh, kwd) == (1, 1) and kw.get("stride", 1) in (1, (1, 1)) and kw.get("padding", 0) in (0, "valid", "same", (0, 0))
    assert len(im2cols) == (0 if pointwise else 1 if keep_cols else 2)
    ref = ops.conv2d(x, w, b, **{k: v for k, v in kw.items()})
    rdx, rdw, rdb = ops.conv2d_backward(g, x, w, **{k: v for k, v in kw.items()},
                                        needs=("input", "weight", "bias") if bias else ("input", "weight"))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for got, want in [(y, ref), (dx, rdx), (dw, rdw)] + ([(db, rdb)] if bias else []):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


def test_batched_pointwise_finite_differences():
    from helpers import check_grad, random_projection
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 2, 3))
    w = rng.standard_normal((5, 4, 1, 1))
    b = rng.standard_normal(5)
    for w, kw in [(w, {}), (rng.standard_normal((5, 4, 3, 2)), dict(stride=(2, 1), padding=1))]:
        assert SF._batched_plan(x, w, b, 2, kw.get("stride", 1), kw.get("padding", 0), 1, 1)
        y_shape = nn.functional.conv2d(ox.tensor(x, dtype=np.float64), ox.tensor(w, dtype=np.float64), **kw).shape
        proj = random_projection(y_shape, seed=3)

        def loss():
            return float(np.sum(proj * nn.functional.conv2d(
                ox.tensor(x, dtype=np.float64), ox.tensor(w, dtype=np.float64), ox.tensor(b, dtype=np.float64),
                **kw).numpy()))

        xt = ox.tensor(x, dtype=np.float64, requires_grad=True)
        wt = ox.tensor(w, dtype=np.float64, requires_grad=True)
        bt = ox.tensor(b, dtype=np.float64, requires_grad=True)
        (nn.functional.conv2d(xt, wt, bt, **kw) * ox.tensor(proj, dtype=np.float64)).sum().backward()
        check_grad(loss, x, xt.grad.numpy())
        check_grad(loss, w, wt.grad.numpy())
        check_grad(loss, b, bt.grad.numpy())


def test_batched_pointwise_only_weight_or_only_input_grad():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 6, 2, 2)).astype(np.float32)
    w = rng.standard_normal((3, 6, 1, 1)).astype(np.float32)
    g = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    rdx, rdw, _ = ops.conv2d_backward(g, x, w)
    xt = ox.tensor(x)
    wt = ox.tensor(w, requires_grad=True)
    nn.functional.conv2d(xt, wt).backward(ox.tensor(g))
    assert xt.grad is None
    np.testing.assert_allclose(wt.grad.numpy(), rdw, rtol=2e-5, atol=2e-5)
    xt = ox.tensor(x, requires_grad=True)
    nn.functional.conv2d(xt, ox.tensor(w)).backward(ox.tensor(g))
    np.testing.assert_allclose(xt.grad.numpy(), rdx, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("w_shape,kw", [((576, 96, 1, 1), {}), ((128, 96, 3, 3), dict(padding=1))])
def test_batched_pointwise_threads_bitwise(w_shape, kw):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 96, 4, 4)).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    outs = []
    try:
        for t in (1, 2):
            ox.set_num_threads(t)
            outs.append(_run(x, w, None, **kw))
    finally:
        ox.set_num_threads(2)
    for a, b in zip(outs[0], outs[1]):
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("x_shape,w_shape,kw", [
    ((1, 8, 2, 2), (4, 8, 1, 1), {}),                       # batch 1: one GEMM already
    ((1, 8, 2, 2), (4, 8, 3, 3), dict(padding=1)),
    ((2, 8, 2, 2), (4, 4, 1, 1), dict(groups=2)),           # grouped
    ((2, 8, 4, 4), (8, 1, 3, 3), dict(padding=1, groups=8)),  # depthwise
    ((2, 8, 9, 9), (4, 8, 1, 1), {}),                       # output planes too large
    ((2, 8, 10, 10), (4, 8, 3, 3), dict(padding=1)),
    ((2, 8, 4, 4), (4, 8, 3, 3), dict(padding="same")),     # string padding of a 3x3 kernel
])
def test_other_convolutions_keep_the_general_path(x_shape, w_shape, kw):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    assert SF._batched_plan(x, w, None, 2, kw.get("stride", 1), kw.get("padding", 0), 1, kw.get("groups", 1)) is None
    y, g, dx, dw, _ = _run(x, w, None, **kw)
    np.testing.assert_array_equal(y, ops.conv2d(x, w, **kw))
    rdx, rdw, _ = ops.conv2d_backward(g, x, w, **kw, needs=("input", "weight"))
    np.testing.assert_array_equal(dx, rdx)
    np.testing.assert_array_equal(dw, rdw)


def test_mixed_dtypes_keep_the_general_path_and_promote():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 2, 2)).astype(np.float32)
    w = rng.standard_normal((5, 4, 1, 1))
    assert SF._batched_plan(x, w, None, 2, 1, 0, 1, 1) is None
    y = nn.functional.conv2d(ox.tensor(x, dtype=np.float32), ox.tensor(w, dtype=np.float64))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), ops.conv2d(x, w), rtol=1e-12)


def test_huge_column_matrices_keep_the_general_path(monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 6, 4, 4)).astype(np.float32)
    w = rng.standard_normal((5, 6, 3, 3)).astype(np.float32)
    assert SF._batched_plan(x, w, None, 2, 1, 1, 1, 1) is not None
    monkeypatch.setattr(SF, "_IM2COL_MAX_VALUES", 6 * 9 * 4 * 16 - 1)
    assert SF._batched_plan(x, w, None, 2, 1, 1, 1, 1) is None
    y, g, dx, dw, _ = _run(x, w, None, padding=1)
    np.testing.assert_array_equal(y, ops.conv2d(x, w, padding=1))
