"""oxinet.ops.matmul against numpy.matmul: shapes, strides, dtypes, broadcasting, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oxinet
from oxinet import ops

RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def assert_matches(a, b, **kw):
    got = ops.matmul(a, b, **kw)
    ref = np.matmul(np.asarray(a, np.float64), np.asarray(b, np.float64))
    expect_dtype = np.result_type(np.asarray(a).dtype, np.asarray(b).dtype)
    assert got.dtype == expect_dtype
    assert got.shape == ref.shape
    tol = 1e-12 if expect_dtype == np.float64 else 1e-5
    k = np.asarray(a).shape[-1]
    scale = np.sqrt(max(k, 1))
    np.testing.assert_allclose(got, ref, rtol=tol * 10, atol=tol * scale * 4)
    return got


@pytest.mark.parametrize(
    "m,n,k",
    [(1, 1, 1), (0, 5, 3), (4, 0, 3), (4, 5, 0), (1, 7, 13), (13, 1, 7), (97, 89, 83),
     (64, 3136, 576), (3, 5, 4099), (257, 255, 129)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_2d_shapes(m, n, k, dtype):
    got = assert_matches(rand(m, k, dtype=dtype), rand(k, n, dtype=dtype))
    if k == 0:
        assert np.all(got == 0)


def test_vector_promotion():
    a, b = rand(7), rand(7, 5)
    assert assert_matches(a, b).shape == (5,)
    assert assert_matches(rand(4, 7), rand(7)).shape == (4,)
    assert assert_matches(rand(7), rand(7)).shape == ()
    assert assert_matches(rand(3, 2, 7), rand(7)).shape == (3, 2)
    assert assert_matches(rand(7), rand(3, 7, 2)).shape == (3, 2)


@pytest.mark.parametrize(
    "sa,sb",
    [((4, 3, 5), (4, 5, 2)), ((4, 3, 5), (5, 2)), ((3, 5), (4, 5, 2)), ((2, 1, 3, 5), (1, 4, 5, 6)),
     ((1, 3, 5), (6, 5, 2)), ((2, 3, 4, 5), (3, 5, 4)), ((0, 3, 5), (5, 2))],
)
def test_batched_broadcasting(sa, sb):
    assert_matches(rand(*sa), rand(*sb))


def test_transposed_and_sliced_views_are_not_copied_wrongly():
    base = rand(40, 60)
    a = base[::2, 3::2]  # (20, 29), non-contiguous
    b = rand(50, 29).T  # (29, 50), Fortran order
    assert_matches(a, b)
    assert_matches(a[::-1], b[:, ::-3])  # negative strides
    c = rand(6, 30, 20).transpose(0, 2, 1)  # (6, 20, 30) batch of transposes
    assert_matches(c, rand(30, 4))
    assert_matches(rand(6, 8, 20), c)


def test_mixed_precision_promotes_to_float64():
    got = assert_matches(rand(5, 6, dtype=np.float32), rand(6, 3, dtype=np.float64))
    assert got.dtype == np.float64


def test_lists_of_floats_work():
    assert_matches([[1.0, 2.0], [3.0, 4.0]], [[0.5], [0.25]])


def test_out_argument():
    a, b = rand(5, 6), rand(6, 7)
    out = np.empty((5, 7), np.float32)
    got = ops.matmul(a, b, out=out)
    assert got is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="'out' has shape"):
        ops.matmul(a, b, out=np.empty((5, 6), np.float32))
    with pytest.raises(TypeError, match="'out' has dtype"):
        ops.matmul(a, b, out=np.empty((5, 7), np.float64))
    sq = rand(6, 6)
    with pytest.raises(ValueError, match="overlaps"):
        ops.matmul(sq, sq, out=sq)


def test_nan_and_inf_propagate_like_numpy():
    a, b = rand(4, 3), rand(3, 5)
    a[1, 2] = np.nan
    b[0, 4] = np.inf
    got = ops.matmul(a, b)
    ref = a @ b
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, bool, np.complex64, object, np.float16])
def test_bad_dtypes_raise_type_error_naming_argument(dtype):
    good = rand(3, 3)
    bad = np.ones((3, 3), dtype=dtype)
    with pytest.raises(TypeError, match=r"matmul: 'b' must be a float32 or float64 array.*\(3, 3\)"):
        ops.matmul(good, bad)
    with pytest.raises(TypeError, match="'a'"):
        ops.matmul(bad, good)


def test_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"inner dimensions differ.*\(3, 4\).*\(5, 2\)"):
        ops.matmul(rand(3, 4), rand(5, 2))
    with pytest.raises(ValueError, match=r"batch dimensions do not broadcast.*\(2, 3, 4\).*\(3, 4, 2\)"):
        ops.matmul(rand(2, 3, 4), rand(3, 4, 2))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ops.matmul(np.float32(2.0), rand(3))


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(0, 70), n=st.integers(0, 70), k=st.integers(0, 70),
    batch=st.lists(st.integers(1, 3), max_size=2),
    trans_a=st.booleans(), trans_b=st.booleans(), f64=st.booleans(),
)
def test_hypothesis_shapes_and_layouts(m, n, k, batch, trans_a, trans_b, f64):
    dtype = np.float64 if f64 else np.float32
    a = rand(*batch, k, m, dtype=dtype).swapaxes(-1, -2) if trans_a else rand(*batch, m, k, dtype=dtype)
    b = rand(n, k, dtype=dtype).T if trans_b else rand(k, n, dtype=dtype)
    assert_matches(a, b)


def test_large_k_accuracy_float32():
    a = rand(8, 20000)
    b = rand(20000, 8)
    assert_matches(a, b)


def test_result_is_independent_of_thread_count():
    a, b = rand(300, 500), rand(500, 400)
    before = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        one = ops.matmul(a, b)
        oxinet.set_num_threads(2)
        two = ops.matmul(a, b)
        oxinet.set_num_threads(3)
        three = ops.matmul(a, b)
    finally:
        oxinet.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, three)
