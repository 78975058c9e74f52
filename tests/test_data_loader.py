"""DataLoader, ArrayDataset, Subset and random_split."""

import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from oxinet.data import ArrayDataset, DataLoader, Subset, random_split
from oxinet.data import _rng


def _ids(loader):
    """The sample ids seen in one epoch, batch by batch (x holds the sample id)."""
    out = []
    for b in loader:
        x = b[0] if isinstance(b, tuple) else b
        out.append(np.asarray(x).reshape(len(x), -1)[:, 0].astype(int).tolist())
    return out


def _data(n, d=3):
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], d, axis=1)
    y = np.arange(n, dtype=np.int64) * 10
    return x, y


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), bs=st.integers(1, 70), shuffle=st.booleans(), drop_last=st.booleans())
def test_every_sample_once_per_epoch(n, bs, shuffle, drop_last):
    x, y = _data(n)
    loader = DataLoader((x, y), batch_size=bs, shuffle=shuffle, drop_last=drop_last, seed=3)
    for _epoch in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        sizes = [len(b[0]) for b in batches]
        if drop_last:
            assert sizes == [bs] * (n // bs)
        else:
            expected = [bs] * (n // bs) + ([n % bs] if n % bs else [])
            assert sizes == expected
        seen = np.concatenate([b[0][:, 0] for b in batches]).astype(int) if batches else np.zeros(0, int)
        assert len(set(seen.tolist())) == len(seen)  # no repeats
        if not drop_last:
            assert sorted(seen.tolist()) == list(range(n))
        for bx, by in batches:  # rows stay paired
            np.testing.assert_array_equal(by, bx[:, 0].astype(np.int64) * 10)


def test_batch_larger_than_data_gives_one_batch():
    x, y = _data(5)
    batches = list(DataLoader((x, y), batch_size=64))
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0][0], x)
    np.testing.assert_array_equal(batches[0][1], y)
    assert list(DataLoader((x, y), batch_size=64, drop_last=True)) == []


def test_last_partial_batch_kept_by_default():
    x, _ = _data(10)
    sizes = [len(b) for b in DataLoader(x, batch_size=4)]
    assert sizes == [4, 4, 2]
    assert [len(b) for b in DataLoader(x, batch_size=4, drop_last=True)] == [4, 4]
    assert len(DataLoader(x, batch_size=4)) == 3 and len(DataLoader(x, batch_size=4, drop_last=True)) == 2


def test_unshuffled_order_and_dtypes():
    x, y = _data(7)
    b = list(DataLoader((x, y), batch_size=3))
    np.testing.assert_array_equal(np.concatenate([t[0] for t in b]), x)
    assert b[0][0].dtype == np.float32 and b[0][1].dtype == np.int64
    assert b[0][0].shape == (3, 3) and b[-1][0].shape == (1, 3)


def test_single_array_yields_arrays():
    x, _ = _data(5)
    b = next(iter(DataLoader(x, batch_size=2)))
    assert isinstance(b, np.ndarray) and b.shape == (2, 3)


def test_seed_determinism_and_epochs_differ():
    x, y = _data(50)
    a = DataLoader((x, y), batch_size=8, shuffle=True, seed=123)
    b = DataLoader((x, y), batch_size=8, shuffle=True, seed=123)
    c = DataLoader((x, y), batch_size=8, shuffle=True, seed=124)
    ea1, ea2 = _ids(a), _ids(a)
    assert ea1 == _ids(b) and ea2 == _ids(b)  # the same sequence of epochs
    assert ea1 != ea2  # a new order each epoch
    assert ea1 != _ids(c)
    assert sorted(sum(ea1, [])) == list(range(50))
    a.manual_seed(123)
    assert _ids(a) == ea1


def test_seed_none_uses_shared_generator(monkeypatch):
    """seed=None draws from oxinet.random.generator() afresh each epoch (manual_seed hook)."""
    state = {"gen": np.random.default_rng(7)}
    fake = types.ModuleType("oxinet.random")
    fake.generator = lambda: state["gen"]
    monkeypatch.setitem(sys.modules, "oxinet.random", fake)
    import oxinet

    monkeypatch.setattr(oxinet, "random", fake, raising=False)
    x, _ = _data(30)
    loader = DataLoader(x, batch_size=30, shuffle=True)
    first = _ids(loader)
    state["gen"] = np.random.default_rng(7)  # "manual_seed(7)" after construction
    assert _ids(loader) == first
    np.testing.assert_array_equal(first[0], np.random.default_rng(7).permutation(30))


def test_shared_generator_fallback(monkeypatch):
    monkeypatch.setitem(sys.modules, "oxinet.random", None)  # import fails
    assert isinstance(_rng.shared_generator(), np.random.Generator)


def test_batches_are_copies():
    x, y = _data(6)
    keep = x.copy()
    for shuffle in (False, True):
        for bx, by in DataLoader((x, y), batch_size=4, shuffle=shuffle, seed=0):
            bx[...] = -1
    np.testing.assert_array_equal(x, keep)


class CountingDataset:
    """A generic dataset: no arrays exposed, counts __getitem__ calls."""

    def __init__(self, x, y):
        self.x, self.y, self.calls = x, y, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.calls += 1
        return self.x[i], self.y[i]


def test_generic_dataset_matches_array_fast_path():
    x, y = _data(23)
    ds = CountingDataset(x, y)
    slow = list(DataLoader(ds, batch_size=5, shuffle=True, seed=9))
    fast = list(DataLoader((x, y), batch_size=5, shuffle=True, seed=9))
    assert ds.calls == 23
    for (a, b), (c, d) in zip(slow, fast):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        assert a.dtype == c.dtype and b.dtype == d.dtype


def test_array_dataset_has_no_per_sample_calls():
    class Spy(ArrayDataset):
        calls = 0

        def __getitem__(self, i):
            Spy.calls += 1
            return super().__getitem__(i)

    x, y = _data(40)
    ds = Spy(x, y)
    assert sum(len(b[0]) for b in DataLoader(ds, batch_size=7, shuffle=True, seed=1)) == 40
    assert sum(len(b[0]) for b in DataLoader(Subset(Subset(ds, np.arange(30)), np.arange(10, 20)), batch_size=3)) == 10
    assert Spy.calls == 0


def test_subset_fast_path_values():
    x, y = _data(20)
    sub = Subset(Subset(ArrayDataset(x, y), np.arange(19, -1, -1)), [0, 2, 4])
    (bx, by), = list(DataLoader(sub, batch_size=10))
    np.testing.assert_array_equal(bx[:, 0], [19, 17, 15])
    assert sub[1][1] == 170


def test_dict_samples_and_strings_collate():
    class D:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"x": np.full(2, i), "name": f"s{i}"}

    b = next(iter(DataLoader(D(), batch_size=3)))
    np.testing.assert_array_equal(b["x"], [[0, 0], [1, 1], [2, 2]])
    assert b["name"] == ["s0", "s1", "s2"]


def test_ragged_samples_error_mentions_collate_fn():
    class D:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return (np.zeros(i + 1),)

    with pytest.raises(ValueError, match="collate_fn"):
        list(DataLoader(D(), batch_size=2))
    out = list(DataLoader(D(), batch_size=2, collate_fn=lambda s: s))
    assert len(out[0]) == 2


def test_transform_applies_to_first_array():
    x, y = _data(4)
    (bx, by), = list(DataLoader((x, y), batch_size=4, transform=lambda a: a + 100))
    np.testing.assert_array_equal(bx, x + 100)
    np.testing.assert_array_equal(by, y)


def test_errors():
    x, y = _data(4)
    with pytest.raises(ValueError, match="empty"):
        DataLoader(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="empty"):
        DataLoader(CountingDataset([], []))
    with pytest.raises(ValueError, match="'batch_size' must be >= 1, got 0"):
        DataLoader((x, y), batch_size=0)
    with pytest.raises(TypeError, match="'batch_size'"):
        DataLoader((x, y), batch_size=2.0)
    with pytest.raises(ValueError, match=r"'dataset\[0\]' has 4 .*'dataset\[1\]' has 3"):
        DataLoader((x, y[:3]))
    with pytest.raises(ValueError, match=r"'features' has 4 .*'labels' has 3"):
        ArrayDataset(x, y[:3], names=["features", "labels"])
    with pytest.raises(ValueError, match="scalar"):
        ArrayDataset(np.float32(1.0))
    with pytest.raises(TypeError, match="'dataset'"):
        DataLoader(5)
    with pytest.raises(TypeError, match="'seed'"):
        DataLoader(x, seed="abc")
    with pytest.raises(ValueError, match="'seed'"):
        DataLoader(x, seed=-1)
    with pytest.raises(IndexError, match="'indices'"):
        Subset(ArrayDataset(x), [0, 4])


def test_random_split():
    x, y = _data(10)
    a, b, c = random_split((x, y), [5, 3, 2], seed=0)
    assert (len(a), len(b), len(c)) == (5, 3, 2)
    ids = np.concatenate([s.indices for s in (a, b, c)])
    assert sorted(ids.tolist()) == list(range(10))
    a2, _, _ = random_split((x, y), [5, 3, 2], seed=0)
    np.testing.assert_array_equal(a.indices, a2.indices)
    # fractions: floor then remainder round-robin (torch semantics): 10 * (.33, .33, .34)
    parts = random_split(ArrayDataset(x), [0.33, 0.33, 0.34], seed=1)
    assert [len(p) for p in parts] == [4, 3, 3]
    np.testing.assert_array_equal(a[0][0], x[a.indices[0]])
    with pytest.raises(ValueError, match="sum to 9"):
        random_split((x,), [5, 4])
    with pytest.raises(ValueError, match="fractions"):
        random_split((x,), [0.5, 0.6])


def test_batch_indices_match_iteration():
    x, _ = _data(11)
    a = DataLoader(x, batch_size=4, shuffle=True, seed=2)
    b = DataLoader(x, batch_size=4, shuffle=True, seed=2)
    for _ in range(2):
        idx = [i.tolist() for i in a.batch_indices()]
        assert idx == _ids(b)
