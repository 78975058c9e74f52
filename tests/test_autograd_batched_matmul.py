"""Batched matmul through autograd: batches of small products take NumPy's stacked
matmul (K > 1) and larger ones or outer products (K = 1) the Rust GEMM; values and
gradients against NumPy references on both sides of the cut and with broadcasting."""
import sys

import numpy as np
import pytest

import oxinet as ox

rules = sys.modules["oxinet.autograd.rules"]


@pytest.mark.parametrize("sa,sb", [
    ((100, 1, 30), (100, 30, 128)),     # attention context: 3840 multiply-adds per item
    ((100, 1, 128), (100, 128, 30)),
    ((100, 30, 1), (100, 1, 128)),      # outer products (K = 1): Rust
    ((64, 31, 33), (64, 33, 32)),       # 32736 per item, just under the cut: NumPy
    ((64, 32, 32), (64, 32, 32)),       # 2^15 per item: Rust
    ((3, 40, 1, 8), (40, 8, 300)),      # broadcast batch of the left operand
    ((30, 7), (5, 7, 400)),             # 2-D left operand, batched right: Rust
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_gradients_and_path(sa, sb, dtype, monkeypatch):
    calls = []
    real = rules._ox_matmul
    monkeypatch.setattr(rules, "_ox_matmul", lambda a, b: calls.append((a.shape, b.shape)) or real(a, b))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    ta, tb = ox.tensor(a, dtype=dtype, requires_grad=True), ox.tensor(b, dtype=dtype, requires_grad=True)
    out = ta @ tb
    ref = np.einsum("...mk,...kn->...mn", a.astype(np.float64), b.astype(np.float64))
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert out.dtype == dtype and out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=tol, atol=tol * 10)
    m, k, n = sa[-2], sa[-1], sb[-1]
    uses_rust = (sa, sb) in [(c[0], c[1]) for c in calls]
    assert uses_rust == (k == 1 or m * k * n >= 1 << 15), calls
    g = rng.standard_normal(ref.shape)
    out.backward(g.astype(dtype))
    ga = g @ np.swapaxes(b, -1, -2).astype(np.float64)
    gb = np.swapaxes(a, -1, -2).astype(np.float64) @ g
    while ga.ndim > a.ndim:
        ga = ga.sum(0)
    ga = ga.sum(tuple(i for i, s in enumerate(a.shape) if s == 1 and ga.shape[i] != 1), keepdims=True)
    while gb.ndim > b.ndim:
        gb = gb.sum(0)
    np.testing.assert_allclose(ta.grad.numpy(), ga, rtol=tol * 10, atol=tol * 100)
    np.testing.assert_allclose(tb.grad.numpy(), gb, rtol=tol * 10, atol=tol * 100)


def test_small_batched_empty_and_nan():
    a = ox.tensor(np.zeros((0, 1, 3)), dtype=np.float32, requires_grad=True)
    b = ox.tensor(np.ones((0, 3, 4)), dtype=np.float32, requires_grad=True)
    out = a @ b
    assert out.shape == (0, 1, 4) and out.dtype == np.float32
    x = np.ones((100, 1, 30), np.float32)
    x[3, 0, 2] = np.nan
    out = (ox.tensor(x) @ ox.tensor(np.ones((100, 30, 128), np.float32))).numpy()
    assert np.isnan(out[3]).all() and np.isfinite(np.delete(out, 3, axis=0)).all()
