"""Train/dev/test splits (stratified), Standardizer and one_hot."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from oxinet.data import Standardizer, one_hot, split_indices, train_dev_test_split, train_test_split


def _labels(counts, seed=0):
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    return np.random.default_rng(seed).permutation(y)


def test_train_test_split_pairs_rows_and_sizes():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20) * 3
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, seed=0)
    assert xtr.shape == (15, 2) and xte.shape == (5, 2)
    np.testing.assert_array_equal(xtr[:, 0] / 2 * 3, ytr)  # rows stay aligned
    np.testing.assert_array_equal(xte[:, 0] / 2 * 3, yte)
    assert sorted(np.concatenate([ytr, yte]).tolist()) == (np.arange(20) * 3).tolist()
    # fractions round up for the held-out part, like scikit-learn
    assert len(train_test_split(x, test_size=0.21, seed=0)[1]) == math.ceil(0.21 * 20)
    assert len(train_test_split(x, test_size=7, seed=0)[1]) == 7
    a = train_test_split(x, y, seed=5)
    b = train_test_split(x, y, seed=5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_no_shuffle_is_consecutive():
    x = np.arange(10)
    tr, te = train_test_split(x, test_size=3, shuffle=False)
    np.testing.assert_array_equal(tr, np.arange(7))
    np.testing.assert_array_equal(te, [7, 8, 9])


def test_stratified_proportions_hand_example():
    # 3 classes with 50/30/20 samples, 20% dev and 20% test -> 10/6/4 in each held-out split
    y = _labels([50, 30, 20])
    x = np.arange(100)
    (xtr, ytr), (xd, yd), (xt, yt) = train_dev_test_split(x, y, dev_size=0.2, test_size=0.2, stratify=y, seed=3)
    assert np.bincount(yd, minlength=3).tolist() == [10, 6, 4]
    assert np.bincount(yt, minlength=3).tolist() == [10, 6, 4]
    assert np.bincount(ytr, minlength=3).tolist() == [30, 18, 12]
    np.testing.assert_array_equal(y[xtr], ytr)
    assert len(set(xtr) | set(xd) | set(xt)) == 100


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=2, max_size=6),
    dev=st.floats(0.0, 0.4),
    test=st.floats(0.0, 0.4),
    seed=st.integers(0, 1000),
)
def test_stratified_split_within_one_per_class(counts, dev, test, seed):
    y = _labels(counts, seed)
    n = len(y)
    nd, nt = math.ceil(dev * n), math.ceil(test * n)
    if nd + nt > n:
        return
    idx = split_indices(n, [n - nd - nt, nd, nt], stratify=y, seed=seed)
    assert [len(i) for i in idx] == [n - nd - nt, nd, nt]  # exact totals
    assert sorted(np.concatenate(idx).tolist()) == list(range(n))  # a partition
    for part, size in zip(idx, [n - nd - nt, nd, nt]):
        got = np.bincount(y[part], minlength=len(counts))
        ideal = np.asarray(counts) * size / n
        assert np.all(np.abs(got - ideal) < 1.0 + 1e-9), (got, ideal)


def test_stratify_with_one_hot_labels():
    y = _labels([12, 8])
    yoh = np.eye(2)[y]
    _, _, ytr, yte = train_test_split(np.arange(20), yoh, test_size=0.25, stratify=yoh, seed=0)
    assert yte.sum(0).tolist() == [3.0, 2.0]


def test_split_errors():
    x = np.arange(10)
    with pytest.raises(ValueError, match="'test_size'"):
        train_test_split(x, test_size=1.5)
    with pytest.raises(ValueError, match="'test_size'"):
        train_test_split(x, test_size=11)
    with pytest.raises(TypeError, match="'dev_size'"):
        train_dev_test_split(x, dev_size="a")
    with pytest.raises(ValueError, match="more than the 10 samples"):
        train_dev_test_split(x, dev_size=6, test_size=6)
    with pytest.raises(ValueError, match="'arrays\\[0\\]' has 10 .*'arrays\\[1\\]' has 9"):
        train_test_split(x, x[:9])
    with pytest.raises(ValueError, match="'stratify'"):
        train_test_split(x, stratify=x[:5])
    with pytest.raises(ValueError, match="'stratify' requires shuffle"):
        train_test_split(x, stratify=x, shuffle=False)


def test_single_array_dev_split_returns_arrays():
    tr, dv, te = train_dev_test_split(np.arange(10), dev_size=2, test_size=3, seed=0)
    assert (len(tr), len(dv), len(te)) == (5, 2, 3)


def test_standardizer_fit_on_train_apply_to_test():
    rng = np.random.default_rng(0)
    xtr = rng.normal(3.0, 2.0, size=(200, 4)).astype(np.float32)
    xte = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    s = Standardizer().fit(xtr)
    ztr = s.transform(xtr)
    np.testing.assert_allclose(ztr.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ztr.std(0), 1, atol=1e-5)
    mu = xtr.astype(np.float64).mean(0)
    sd = xtr.astype(np.float64).std(0)
    np.testing.assert_allclose(s.transform(xte), (xte - mu) / sd, rtol=1e-5, atol=1e-5)
    assert s.transform(xte).dtype == np.float32
    np.testing.assert_allclose(s.inverse_transform(s.transform(xte)), xte, rtol=1e-5, atol=1e-5)


def test_standardizer_zero_variance_and_dtypes():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    s = Standardizer()
    z = s.fit_transform(x)
    assert z.dtype == np.float64 and np.isfinite(z).all()
    np.testing.assert_array_equal(z[:, 1], 0.0)  # constant feature: centred, not divided
    np.testing.assert_allclose(z[:, 0], [-1.2247448714, 0.0, 1.2247448714])
    zi = Standardizer().fit_transform(np.array([[1, 2], [3, 2]], dtype=np.int64))
    assert zi.dtype == np.float32
    np.testing.assert_array_equal(zi, [[-1, 0], [1, 0]])


def test_standardizer_per_channel_images_and_state():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3, 4, 4)) * np.array([1.0, 2.0, 3.0])[None, :, None, None] + 5
    s = Standardizer(axis=(0, 2, 3)).fit(x)
    assert s.mean_.shape == (1, 3, 1, 1)
    z = s.transform(x[:2])
    ref = (x[:2] - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(z, ref, rtol=1e-12)
    s2 = Standardizer(axis=(0, 2, 3)).load_state_dict(s.state_dict())
    np.testing.assert_array_equal(s2.transform(x[:2]), z)


def test_standardizer_errors():
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(np.zeros((2, 2)))
    s = Standardizer().fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"'x' has shape \(4, 2\)"):
        s.transform(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="no samples"):
        Standardizer().fit(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="'x'"):
        Standardizer().fit(np.array([["a"]]))


def test_one_hot():
    y = np.array([2, 0, 1, 2])
    np.testing.assert_array_equal(one_hot(y), np.eye(3)[y])
    assert one_hot(y).dtype == np.float32
    assert one_hot(y, 5).shape == (4, 5)
    assert one_hot(y, dtype=np.int64).dtype == np.int64
    np.testing.assert_array_equal(one_hot(np.array([[0, 1]]), 2), [[[1, 0], [0, 1]]])
    assert one_hot(np.zeros(0, np.int64), 3).shape == (0, 3)
    with pytest.raises(ValueError, match="'labels' must lie in \\[0, 2\\)"):
        one_hot(y, 2)
    with pytest.raises(ValueError, match="'labels'"):
        one_hot(np.array([-1, 0]))
    with pytest.raises(TypeError, match="'labels'"):
        one_hot(np.array([0.5]))
    with pytest.raises(ValueError, match="'num_classes'"):
        one_hot(np.zeros(0, np.int64))
