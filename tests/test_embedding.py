"""embedding / embedding_backward: lookup (course F54), scatter-add with repeated
indices and padding_idx against np.add.at, finite differences, determinism, errors."""

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from helpers import check_grad, random_projection


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_is_a_row_lookup(dtype):
    w = np.random.default_rng(0).standard_normal((10, 4)).astype(dtype)
    idx = np.array([[1, 9, 1], [0, 0, 3]])
    out = F.embedding(idx, w)
    assert out.shape == (2, 3, 4) and out.dtype == dtype
    np.testing.assert_array_equal(out, w[idx])
    # F54: e_j = E o_j with E of shape (d, V) and one-hot o_j
    E = w.T
    o = np.eye(10)[9]
    np.testing.assert_allclose(out[0, 1], E @ o)
    assert F.embedding(np.array(3, np.int32), w).shape == (4,)
    assert F.embedding(np.zeros((0, 2), np.int64), w).shape == (0, 2, 4)


@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_backward_matches_add_at(padding_idx):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 6, (5, 7))
    idx[0, :4] = 1  # repeats of the padding row
    g = rng.standard_normal((5, 7, 3))
    dw = F.embedding_backward(g, idx, 6, padding_idx)
    want = np.zeros((6, 3))
    np.add.at(want, idx.reshape(-1), g.reshape(-1, 3))
    if padding_idx is not None:
        want[padding_idx % 6] = 0
    np.testing.assert_allclose(dw, want, rtol=1e-14)


def test_backward_finite_differences():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 3))
    idx = np.array([[0, 2, 2], [4, 2, 0]])
    P = random_projection((2, 3, 3), seed=3)

    def loss():
        return np.sum(P * F.embedding(idx, w))

    check_grad(loss, w, F.embedding_backward(P, idx, 5))
    # padding row gets no gradient (PyTorch), the others are unchanged
    dwp = F.embedding_backward(P, idx, 5, padding_idx=2)
    assert np.all(dwp[2] == 0)
    np.testing.assert_array_equal(dwp[[0, 4]], F.embedding_backward(P, idx, 5)[[0, 4]])


def test_backward_is_deterministic_across_thread_counts():
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 50, 20000)
    g = rng.standard_normal((20000, 16)).astype(np.float32)
    before = oxinet.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            oxinet.set_num_threads(n)
            outs.append(F.embedding_backward(g, idx, 50))
    finally:
        oxinet.set_num_threads(before)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    # and each row is the in-order sum
    row = np.zeros(16, np.float32)
    for p in np.flatnonzero(idx == 7):
        row += g[p]
    np.testing.assert_array_equal(outs[0][7], row)


def test_bad_inputs_name_the_argument():
    w = np.ones((4, 2))
    with pytest.raises(TypeError, match="'input'"):
        F.embedding(np.array([0.0, 1.0]), w)
    with pytest.raises(TypeError, match="'input'"):
        F.embedding(np.array([True]), w)
    with pytest.raises(ValueError, match="'input'"):
        F.embedding(np.array([0, 4]), w)
    with pytest.raises(ValueError, match="'input'"):
        F.embedding(np.array([-1]), w)
    with pytest.raises(ValueError, match="'weight'"):
        F.embedding(np.array([0]), np.ones(4))
    with pytest.raises(TypeError, match="'weight'"):
        F.embedding(np.array([0]), np.ones((4, 2), np.int32))
    with pytest.raises(ValueError, match="'padding_idx'"):
        F.embedding(np.array([0]), w, padding_idx=4)
    with pytest.raises(ValueError, match="'input'"):
        F.embedding_backward(np.ones((2, 2)), np.array([0, 9]), 4)
    with pytest.raises(ValueError, match="'grad_output'"):
        F.embedding_backward(np.ones((3, 2)), np.array([0, 1]), 4)
