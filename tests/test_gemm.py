"""oxinet.ops.gemm: BLAS semantics (alpha, beta, transposes, c broadcasting, in place)."""

import numpy as np
import pytest

from oxinet import ops

RNG = np.random.default_rng(99)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_beta_transposes(trans_a, trans_b, dtype):
    m, n, k = 7, 9, 11
    a = rand(k, m, dtype=dtype) if trans_a else rand(m, k, dtype=dtype)
    b = rand(n, k, dtype=dtype) if trans_b else rand(k, n, dtype=dtype)
    c = rand(m, n, dtype=dtype)
    got = ops.gemm(a, b, c, alpha=-1.5, beta=0.25, trans_a=trans_a, trans_b=trans_b)
    ref = -1.5 * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b) + 0.25 * c
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, ref, rtol=tol * 10, atol=tol * 10)
    assert got.dtype == dtype


def test_beta_zero_ignores_nan_in_c():
    a, b = rand(3, 4), rand(4, 5)
    c = np.full((3, 5), np.nan)
    got = ops.gemm(a, b, c, beta=0.0)
    np.testing.assert_allclose(got, a @ b, rtol=1e-12)


def test_c_broadcasts_as_bias_row():
    a, b, bias = rand(6, 4), rand(4, 3), rand(3)
    got = ops.gemm(a, b, bias, beta=1.0)
    np.testing.assert_allclose(got, a @ b + bias, rtol=1e-12)
    with pytest.raises(ValueError, match=r"'c' has shape \(4,\)"):
        ops.gemm(a, b, rand(4), beta=1.0)


def test_in_place_update_of_c():
    a, b, c = rand(5, 4), rand(4, 6), rand(5, 6)
    expect = 2.0 * a @ b + 3.0 * c
    got = ops.gemm(a, b, c, alpha=2.0, beta=3.0, out=c)
    assert got is c
    np.testing.assert_allclose(c, expect, rtol=1e-12)


def test_c_into_separate_out_and_non_contiguous_out():
    a, b, c = rand(5, 4), rand(4, 6), rand(5, 6)
    big = np.zeros((10, 12))
    out = big[::2, ::2]
    ops.gemm(a, b, c, beta=1.0, out=out)
    np.testing.assert_allclose(out, a @ b + c, rtol=1e-12)
    assert np.all(big[1::2] == 0)


def test_mixed_dtypes_promote():
    got = ops.gemm(rand(3, 4, dtype=np.float32), rand(4, 2), rand(3, 2, dtype=np.float32), beta=1.0)
    assert got.dtype == np.float64


def test_errors():
    with pytest.raises(ValueError, match=r"'a' must be 2-D, got shape \(2, 3, 4\)"):
        ops.gemm(rand(2, 3, 4), rand(4, 2))
    with pytest.raises(ValueError, match=r"inner dimensions differ.*trans_a=True"):
        ops.gemm(rand(3, 4), rand(4, 2), trans_a=True)
    with pytest.raises(TypeError, match="'c' must be a float32 or float64"):
        ops.gemm(rand(3, 4), rand(4, 2), np.ones((3, 2), np.int64), beta=1.0)
    with pytest.raises(ValueError, match="'out' overlaps"):
        a = rand(4, 4)
        ops.gemm(a, rand(4, 4), out=a)
