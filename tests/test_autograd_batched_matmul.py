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


@pytest.mark.parametrize("sa,sb", [((3000, 1), (1, 16)), ((100, 30, 1), (1, 16)), ((2, 1), (1, 3)),
                                   ((7, 5, 1), (7, 1, 9)), ((4, 1), (3, 1, 6))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outer_products_on_rust_with_numpy_bits(sa, sb, dtype, monkeypatch):
    """K = 1 products of any size take the Rust GEMM and give NumPy's bits (one product
    per element); their gradients are checked against NumPy."""
    calls = []
    real = rules._ox_matmul
    monkeypatch.setattr(rules, "_ox_matmul", lambda a, b: calls.append(1) or real(a, b))
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    ta, tb = ox.tensor(a, dtype=dtype, requires_grad=True), ox.tensor(b, dtype=dtype, requires_grad=True)
    out = ta @ tb
    assert calls
    np.testing.assert_array_equal(out.numpy(), np.matmul(a, b))
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    ga = (g.astype(np.float64) @ np.swapaxes(b, -1, -2))
    gb = np.swapaxes(a, -1, -2).astype(np.float64) @ g
    while ga.ndim > a.ndim:
        ga = ga.sum(0)
    while gb.ndim > b.ndim:
        gb = gb.sum(0)
    gb = gb.sum(tuple(i for i, s in enumerate(b.shape) if s == 1 and gb.shape[i] != 1), keepdims=True)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ta.grad.numpy(), ga, rtol=tol, atol=tol)
    np.testing.assert_allclose(tb.grad.numpy(), gb, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape,axes", [
    ((100, 30, 16), (1,)), ((3000, 16), (0,)), ((100, 30, 128), (2,)), ((32, 10, 256), (0, 1)),
    ((6, 5, 7, 3), (0, 2, 3)), ((11, 100, 128), (0,)), ((4, 300), (1,)), ((5,), (0,)), ((3, 1, 4), (1,)),
    ((2, 3, 4), (0, 1, 2)), ((0, 3), (0,)), ((3, 0, 2), (1,)),
])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_axes_matches_numpy(shape, axes, keepdims, dtype):
    g = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    if g.size > 3:
        g.reshape(-1)[3] = np.nan if shape == (100, 30, 16) else g.reshape(-1)[3]
    got = rules._sum_axes(g, axes, keepdims)
    want = g.astype(np.float64).sum(axis=axes, keepdims=keepdims)
    assert np.shape(got) == want.shape and np.asarray(got).dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-5 * max(1, int(np.prod([shape[a] for a in axes])) ** 0.5)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # a transposed (non-contiguous) view too
    if g.ndim >= 2:
        gt = np.swapaxes(g, 0, -1)
        ax = tuple(sorted(g.ndim - 1 - a if a in (0, g.ndim - 1) else a for a in axes))
        np.testing.assert_allclose(rules._sum_axes(gt, ax, keepdims),
                                   gt.astype(np.float64).sum(axis=ax, keepdims=keepdims), rtol=tol, atol=tol)


@pytest.mark.parametrize("sx,sy", [((100, 30, 16), (100, 1, 16)), ((3000, 16), (16,)), ((4, 5, 6), (5, 1)),
                                   ((2, 3), (1,)), ((7, 1, 300), (7, 4, 1))])
def test_broadcast_gradients_through_sum_axes(sx, sy):
    """Add / mul gradients summed back to broadcast shapes (float64 against NumPy)."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(sx), rng.standard_normal(sy)
    tx, ty = ox.tensor(x, dtype=np.float64, requires_grad=True), ox.tensor(y, dtype=np.float64, requires_grad=True)
    out = tx * ty + ty
    g = rng.standard_normal(out.shape)
    out.backward(g)

    def back(a, shape):
        while a.ndim > len(shape):
            a = a.sum(0)
        return a.sum(tuple(i for i, s in enumerate(shape) if s == 1 and a.shape[i] != 1), keepdims=True)

    np.testing.assert_allclose(tx.grad.numpy(), back(g * y, sx), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ty.grad.numpy(), back(g * x + g, sy), rtol=1e-12, atol=1e-12)


def test_large_gradient_sums_in_recycled_memory():
    """A large intermediate used several times: its gradient sums (first sum in a new,
    recycled buffer, then in place) equal NumPy's, and leave the addends untouched."""
    from oxinet.autograd.graph import _add_new

    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((300, 1000)).astype(np.float32), rng.standard_normal((300, 1000)).astype(np.float32)
    a0, b0 = a.copy(), b.copy()
    s = _add_new(a, b)
    assert s.dtype == np.float32 and s.flags.c_contiguous and s.flags.writeable
    assert not np.shares_memory(s, a) and not np.shares_memory(s, b)
    np.testing.assert_array_equal(s, a0 + b0)
    np.testing.assert_array_equal(a, a0)
    assert _add_new(a, b[:1]).shape == (300, 1000)  # broadcasting: plain NumPy add

    x = ox.tensor(rng.standard_normal((3, 300, 1000)), dtype=np.float64, requires_grad=True)
    h = x * 2.0  # an intermediate (not a leaf) used three times
    w = [rng.standard_normal((1000, 4)) for _ in range(3)]
    out = sum(((h @ ox.tensor(wi, dtype=np.float64)).sum() for wi in w), ox.tensor(0.0, dtype=np.float64))
    out.backward()
    want = 2.0 * np.broadcast_to(sum(wi.sum(1) for wi in w), (3, 300, 1000))
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12)
