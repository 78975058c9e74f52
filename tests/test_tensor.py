"""Tensor construction, dtype policy, properties, factories, indexing and errors."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import oxinet as ox


def test_dtype_policy_like_torch_with_float32_default():
    assert ox.tensor([1.0, 2.0]).dtype == np.float32
    assert ox.tensor(1.5).dtype == np.float32
    assert ox.tensor(np.zeros(3)).dtype == np.float32  # float64 NumPy data -> float32
    assert ox.tensor(np.zeros(3), dtype=ox.float64).dtype == np.float64
    assert ox.tensor([1, 2]).dtype == np.int64
    assert ox.tensor([True, False]).dtype == np.bool_
    assert ox.tensor(np.zeros(3, np.float32)).dtype == np.float32
    assert ox.tensor(np.zeros(3, np.int32)).dtype == np.int32
    assert ox.tensor(ox.zeros(2, dtype=ox.float64)).dtype == np.float64  # Tensors keep their dtype
    a64 = np.zeros(3)
    assert ox.as_tensor(a64).numpy() is a64  # as_tensor shares NumPy data, dtype kept
    assert ox.as_tensor([1.0]).dtype == np.float32


def test_float64_is_kept_through_ops():
    x = ox.randn(3, dtype=ox.float64)
    assert (x * 2.0 + 1).exp().sum().dtype == np.float64
    y = ox.randn(3)
    assert (y * 2.0).dtype == np.float32  # Python scalars do not promote
    assert (x + y).dtype == np.float64  # mixed promotes like NumPy


def test_default_dtype_switch():
    ox.set_default_dtype(ox.float64)
    try:
        assert ox.tensor([1.0]).dtype == np.float64
        assert ox.zeros(2).dtype == np.float64
    finally:
        ox.set_default_dtype(ox.float32)
    with pytest.raises(TypeError, match="'dtype'"):
        ox.set_default_dtype(np.int32)


def test_tensor_copies_but_from_numpy_and_numpy_share():
    a = np.arange(3.0, dtype=np.float32)
    t = ox.tensor(a)
    a[0] = 10
    assert t.numpy()[0] == 0
    s = ox.from_numpy(a)
    assert np.shares_memory(s.numpy(), a)
    assert s.numpy() is a
    assert ox.Tensor(a).numpy() is a
    assert np.asarray(s) is a


def test_properties():
    t = ox.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.dim() == 3 and t.numel() == 24
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.T.shape == (4, 3, 2)
    assert len(t) == 2
    assert ox.tensor(3.5).item() == 3.5
    assert float(ox.tensor([2.0])) == 2.0
    assert t.dtype == np.float32 and t.device == "cpu"
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert t.tolist() == np.zeros((2, 3, 4)).tolist()


def test_factories():
    ox.manual_seed(1)
    a = ox.randn(2, 3)
    ox.manual_seed(1)
    b = ox.randn((2, 3))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.dtype == np.float32
    assert ox.rand(4, dtype=ox.float64).dtype == np.float64
    r = ox.rand(1000).numpy()
    assert r.min() >= 0 and r.max() < 1
    assert ox.ones(2, requires_grad=True).requires_grad
    np.testing.assert_array_equal(ox.arange(5).numpy(), np.arange(5))
    assert ox.arange(5).dtype == np.int64
    assert ox.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_allclose(ox.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(ox.eye(3).numpy(), np.eye(3))
    assert ox.full((2, 2), 7).dtype == np.int64
    assert ox.full((2, 2), 7.0).numpy().sum() == 28
    assert ox.zeros_like(a).shape == (2, 3)
    assert ox.ones_like(ox.zeros(2, dtype=ox.float64)).dtype == np.float64
    i = ox.randint(0, 5, (100,))
    assert i.dtype == np.int64 and i.numpy().max() < 5
    assert sorted(ox.randperm(6).tolist()) == list(range(6))
    with pytest.raises(ValueError, match="'size'"):
        ox.zeros(-1)


def test_manual_seed_shared_generator():
    g1 = ox.manual_seed(3)
    assert ox.random.generator() is g1
    x = ox.random.generator().standard_normal(3)
    ox.manual_seed(3)
    np.testing.assert_array_equal(ox.random.generator().standard_normal(3), x)
    assert ox.random.initial_seed() == 3
    with pytest.raises(TypeError, match="'seed'"):
        ox.manual_seed(1.5)
    with pytest.raises(ValueError, match="'seed'"):
        ox.manual_seed(-1)


def test_indexing_forward_matches_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    t = ox.tensor(a, dtype=ox.float64)
    for key in [0, (1, 2), (slice(None), 1), (Ellipsis, 2), (np.array([1, 0]),), (0, [0, 2], slice(1, 3)),
                a > 10, (slice(None, None, -1),), (None, 1)]:
        np.testing.assert_array_equal(t[key].numpy(), a[key])


def test_setitem_and_inplace_ops():
    t = ox.zeros(3)
    t[1] = 2.0
    t.add_(1.0).mul_(2.0)
    np.testing.assert_array_equal(t.numpy(), [2, 6, 2])
    t.zero_()
    assert t.numpy().sum() == 0
    t.fill_(3.0)
    t.copy_(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(t.numpy(), [1, 2, 3])


def test_split_chunk_like_torch():
    t = ox.arange(10)
    assert [p.shape[0] for p in ox.split(t, 3)] == [3, 3, 3, 1]
    assert [p.shape[0] for p in t.split([2, 8])] == [2, 8]
    assert [p.shape[0] for p in t.chunk(3)] == [4, 4, 2]
    with pytest.raises(ValueError, match="sum to"):
        t.split([2, 2])


def test_cat_stack_errors_name_the_tensor():
    with pytest.raises(ValueError, match="tensor 1 has shape"):
        ox.cat([ox.zeros(2, 3), ox.zeros(3, 4)], 0)
    with pytest.raises(ValueError, match="tensor 1 has shape"):
        ox.stack([ox.zeros(2), ox.zeros(3)])
    with pytest.raises(ValueError, match="must not be empty"):
        ox.cat([])


def test_shape_errors():
    t = ox.zeros(2, 3)
    with pytest.raises(ValueError, match="invalid for a tensor of shape"):
        t.reshape(4, 2)
    with pytest.raises(ValueError, match="inner dimensions"):
        t @ ox.zeros(2, 2)
    with pytest.raises(IndexError, match="out of range"):
        t.sum(dim=2)
    with pytest.raises(ValueError, match="permutation"):
        t.permute(0, 0)
    with pytest.raises(ValueError, match="cannot expand"):
        t.expand(4, 4)
    with pytest.raises(IndexError):
        t[5]
    with pytest.raises(ValueError, match="'mode'"):
        ox.pad(t, (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="smaller than the dim size"):
        ox.pad(t, (3, 0), mode="reflect")


def test_repr_like_torch():
    assert repr(ox.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "requires_grad=True" in repr(ox.tensor([1.0], requires_grad=True))
    assert "dtype=float64" in repr(ox.tensor([1.0], dtype=ox.float64))


def test_pickle_and_deepcopy_of_leaves():
    t = ox.tensor([1.0, 2.0], requires_grad=True)
    u = pickle.loads(pickle.dumps(t))
    np.testing.assert_array_equal(u.numpy(), t.numpy())
    assert u.requires_grad
    v = copy.deepcopy(t)
    assert not np.shares_memory(v.numpy(), t.numpy()) and v.requires_grad
    with pytest.raises(RuntimeError, match="leaf"):
        copy.deepcopy(t * 2)


def test_top_level_functions():
    x = ox.tensor([[1.0, -2.0], [3.0, 4.0]])
    np.testing.assert_allclose(ox.exp(x).numpy(), np.exp(x.numpy()))
    np.testing.assert_allclose(ox.sum(x, dim=1).numpy(), [-1.0, 7.0])
    np.testing.assert_allclose(ox.mean(x).numpy(), 1.5)
    np.testing.assert_allclose(ox.clamp(x, min=0).numpy(), [[1, 0], [3, 4]])
    assert ox.argmax(x).item() == 3
    assert ox.matmul(x, x).shape == (2, 2)
    np.testing.assert_allclose(ox.where(x > 0, x, ox.zeros(1)).numpy(), [[1, 0], [3, 4]])


def test_conversion_methods():
    x = ox.tensor([1.7, -2.2])
    assert x.long().dtype == np.int64 and x.long().tolist() == [1, -2]
    assert x.double().dtype == np.float64
    assert x.to(ox.float64).dtype == np.float64
    assert x.to("cpu") is x
    assert x.bool().dtype == np.bool_
    assert ox.tensor([1]).float().dtype == np.float32


def test_truth_value_of_multi_element_tensor_is_an_error():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(ox.zeros(2))
    assert bool(ox.ones(1))


def test_new_factories_and_format():
    x = ox.zeros(2, dtype=ox.float64)
    assert x.new_zeros(3, 4).dtype == np.float64 and x.new_ones((2,)).shape == (2,)
    assert x.new_full((2, 2), 3.0).numpy().sum() == 12
    assert x.new_tensor([1, 2]).dtype == np.float64
    assert ox.ones(2).type_as(x).dtype == np.float64
    assert f"{ox.tensor(1.23456):.2f}" == "1.23"


def test_non_differentiable_helpers():
    a = ox.tensor([[-1.5, 2.5], [0.5, np.nan]])
    np.testing.assert_array_equal((a // 1).numpy()[0], [-2.0, 2.0])
    np.testing.assert_array_equal(ox.tensor([5, 7]) % 3, [2, 1])
    np.testing.assert_array_equal(a.isnan().numpy(), [[False, False], [False, True]])
    assert not a.isfinite().all().item() and a.isinf().any().item() is False
    b = ox.tensor([[1.0, 3.0], [2.0, 0.0]])
    assert b.argmin().item() == 3 and b.argmax(dim=1).tolist() == [1, 0]
    np.testing.assert_array_equal(b.sign().numpy(), [[1, 1], [1, 0]])
    np.testing.assert_array_equal(ox.tensor([1.4, -1.6]).floor().numpy(), [1, -2])
    np.testing.assert_array_equal(ox.tensor([1.4, -1.6]).ceil().numpy(), [2, -1])
    np.testing.assert_array_equal(ox.tensor([1.4, -1.6]).round().numpy(), [1, -2])
    m = b > 0.5
    assert (m & ~m).any().item() is False and (m | ~m).all().item() and (m ^ m).sum().item() == 0
    assert b.equal(b.clone()) and b.allclose(b + 1e-9)
    x = ox.ones(2, requires_grad=True)
    y = x.add(ox.ones(2), alpha=3).sub(ox.ones(2), alpha=2)
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), [2.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_numpy_interop():
    t = ox.ones(2, 3)
    assert isinstance(np.sum(t), ox.Tensor) and np.sum(t).item() == 6
    np.testing.assert_allclose(np.std(ox.tensor([1.0, 3.0])).item(), 1.0)  # NumPy's ddof=0 is passed on
    assert isinstance(np.exp(t), np.ndarray)  # other ufuncs give arrays, like PyTorch
    x = ox.ones(3, requires_grad=True)
    y = np.full(3, 2.0, np.float32) * x + np.ones(3, np.float32)  # recorded: Tensor ops run
    assert isinstance(y, ox.Tensor) and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])
    assert (np.zeros(3) < x).all().item()
    with pytest.raises(TypeError, match="drop its gradient"):
        np.exp(x)
    with pytest.raises(TypeError, match="'out'"):
        x.sum(out=np.zeros(()))
