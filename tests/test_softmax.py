"""softmax / log_softmax along any axis: NumPy reference (course F6), +/-1e4 logits,
float64 finite-difference backward checks, errors."""

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from helpers import check_grad, random_projection


def ref_softmax(x, axis):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis, keepdims=True))  # F6, stable form
    return e / e.sum(axis, keepdims=True)


def ref_log_softmax(x, axis):
    x = np.asarray(x, np.float64)
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def rand(*shape, seed=0, dtype=np.float64, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_matches_reference_on_every_axis(dtype, tol, axis):
    x = rand(5, 37, 19, seed=1, dtype=dtype)
    y = F.softmax(x, axis)
    ly = F.log_softmax(x, dim=axis)
    assert y.dtype == dtype and ly.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, ref_softmax(x, axis), atol=tol, rtol=tol)
    np.testing.assert_allclose(ly, ref_log_softmax(x, axis), atol=tol * 20, rtol=tol)


def test_course_f6_direct_formula():
    # t = exp(z); a_i = t_i / sum_j t_j, on small logits where the direct form is safe.
    z = np.array([5.0, 2.0, -1.0, 3.0])
    t = np.exp(z)
    np.testing.assert_allclose(F.softmax(z), t / t.sum(), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_are_exact(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    y = F.softmax(x)
    np.testing.assert_array_equal(y[0], [1, 0, 0])
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    ly = F.log_softmax(x)
    np.testing.assert_array_equal(ly[0], [0, -2e4, -1e4])
    np.testing.assert_allclose(ly[1], [-np.log(3)] * 3, rtol=1e-6)
    yt = F.softmax(x.T, axis=0)  # strided path too
    np.testing.assert_array_equal(yt[:, 0], [1, 0, 0])


def test_nan_and_all_neg_inf_rows_propagate_nan():
    x = np.array([[1.0, np.nan, 2.0], [-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]])
    y = F.softmax(x)
    assert np.all(np.isnan(y[0])) and np.all(np.isnan(y[1]))
    np.testing.assert_array_equal(y[2], [0.5, 0, 0.5])


def test_scalar_empty_and_noncontiguous():
    assert F.softmax(np.float64(3.0)) == 1.0
    e = F.softmax(np.zeros((0, 4), np.float32), axis=0)
    assert e.shape == (0, 4) and e.dtype == np.float32
    x = rand(6, 8, seed=2)[:, ::2]
    np.testing.assert_allclose(F.softmax(x), ref_softmax(x, -1), rtol=1e-14)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("log", [False, True])
def test_backward_finite_differences(axis, log):
    x = rand(3, 4, 5, seed=3, scale=1.0)
    P = random_projection(x.shape, seed=4)
    fwd = F.log_softmax if log else F.softmax
    bwd = F.log_softmax_backward if log else F.softmax_backward

    def loss():
        return np.sum(P * fwd(x, axis))

    check_grad(loss, x, bwd(P, fwd(x, axis), axis))


def test_thread_count_does_not_change_bits():
    x = rand(300, 1000, seed=5, dtype=np.float32)
    before = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        a = F.log_softmax(x)
        oxinet.set_num_threads(2)
        b = F.log_softmax(x)
    finally:
        oxinet.set_num_threads(before)
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_name_the_argument():
    with pytest.raises(TypeError, match="'input'"):
        F.softmax(np.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match="'dim'"):
        F.log_softmax(np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="'grad_output'"):
        F.softmax_backward(np.zeros((2, 3)), np.zeros((3, 2)))


try:
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra.numpy import arrays, array_shapes
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=60, deadline=None)
    @given(arrays(np.float64, array_shapes(min_dims=1, max_dims=4, max_side=7),
                  elements=st.floats(-1e4, 1e4, allow_nan=False)), st.integers(-4, 3), st.booleans())
    def test_random_shapes_and_axes(x, axis, log):
        if not -x.ndim <= axis < x.ndim:
            axis = axis % x.ndim
        got = (F.log_softmax if log else F.softmax)(x, axis)
        want = (ref_log_softmax if log else ref_softmax)(x, axis)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * (1 + np.abs(want)).max())
        if not log:
            np.testing.assert_allclose(got.sum(axis), 1.0, rtol=1e-12)


# --- the float32 AVX-512 row kernels (last axis, float32): lengths around the 16- and
# 64-lane blocks and their masked tails, NaN / -inf, and 1 vs 2 threads bit for bit.

@pytest.mark.parametrize("c", [1, 2, 15, 16, 17, 63, 64, 65, 127, 1000, 10003])
def test_float32_rows_of_every_remainder(c):
    x = rand(7, c, seed=c, dtype=np.float32)
    y, ly = F.softmax(x), F.log_softmax(x)
    np.testing.assert_allclose(y, ref_softmax(x, -1), atol=2e-6, rtol=2e-6)
    np.testing.assert_allclose(ly, ref_log_softmax(x, -1), atol=4e-5, rtol=2e-6)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


def test_float32_nan_and_neg_inf_rows():
    x = np.zeros((4, 37), np.float32)
    x[0, 20] = np.nan
    x[1] = -np.inf
    x[2, ::2] = -np.inf
    x[3, 36] = np.nan  # in the masked tail
    for f in (F.softmax, F.log_softmax):
        y = f(x)
        assert np.isnan(y[0]).all() and np.isnan(y[1]).all() and np.isnan(y[3]).all()
    y = F.softmax(x)
    np.testing.assert_array_equal(y[2, ::2], 0)
    np.testing.assert_allclose(y[2, 1::2], 1 / 18, rtol=1e-6)
    assert np.isneginf(F.log_softmax(x)[2, ::2]).all()


def test_float32_rows_do_not_depend_on_threads():
    x = rand(257, 10000, seed=6, dtype=np.float32)
    before = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        a = F.softmax(x)
        oxinet.set_num_threads(2)
        b = F.softmax(x)
    finally:
        oxinet.set_num_threads(before)
    np.testing.assert_array_equal(a, b)
