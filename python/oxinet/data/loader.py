"""Datasets over arrays, subsets, random splits and the mini-batch :class:`DataLoader`.

A *dataset* is anything with ``__len__`` and ``__getitem__(i)`` returning one sample
(usually a tuple such as ``(x, y)``), as in ``torch.utils.data``. Arrays need no wrapper:
``DataLoader((X, y), batch_size=32)`` slices them directly, one fancy-index per array and
batch, with no Python loop over samples.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from oxinet.data._rng import SeedSource, make_generator


def _shape_list(names: Sequence[str], arrays: Sequence[np.ndarray]) -> str:
    return ", ".join(f"'{n}' has {len(a)} (shape {a.shape})" for n, a in zip(names, arrays))


def _as_arrays(arrays: Sequence[Any], who: str, names: Sequence[str] | None = None) -> tuple:
    """Turn the arguments into ndarrays of rank >= 1 with one common first dimension."""
    if len(arrays) == 0:
        raise ValueError(f"{who}: at least one array is required")
    if names is None:
        names = [f"arrays[{i}]" for i in range(len(arrays))]
    out = []
    for name, a in zip(names, arrays):
        a = np.asarray(a)
        if a.ndim == 0:
            raise ValueError(f"{who}: '{name}' is a scalar (shape ()); arrays need a sample axis 0")
        out.append(a)
    lengths = {len(a) for a in out}
    if len(lengths) > 1:
        raise ValueError(
            f"{who}: all arrays must have the same length along axis 0, but "
            + _shape_list(names, out)
        )
    return tuple(out)


class ArrayDataset:
    """A dataset over arrays sharing their first dimension (like ``TensorDataset``).

    ``ds[i]`` is the tuple ``(a[i], b[i], ...)``; ``ds[index_array]`` gives the tuple of
    batches ``(a[idx], b[idx], ...)``. :class:`DataLoader` slices the arrays directly.
    """

    def __init__(self, *arrays: Any, names: Sequence[str] | None = None):
        if names is not None and len(names) != len(arrays):
            raise ValueError(
                f"ArrayDataset: 'names' has {len(names)} entries for {len(arrays)} arrays"
            )
        self.arrays = _as_arrays(arrays, "ArrayDataset", names)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"ArrayDataset({shapes})"


class Subset:
    """The samples of ``dataset`` at positions ``indices`` (in that order)."""

    def __init__(self, dataset, indices):
        idx = np.asarray(indices)
        if idx.ndim != 1:
            raise ValueError(f"Subset: 'indices' must be 1-D, got shape {idx.shape}")
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"Subset: 'indices' must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        n = len(dataset)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(
                f"Subset: 'indices' must lie in [0, {n}) for a dataset of {n} samples, "
                f"got range [{idx.min()}, {idx.max()}]"
            )
        self.dataset = dataset
        self.indices = np.where(idx < 0, idx + n, idx)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, (numbers.Integral, np.integer)):
            return self.dataset[int(self.indices[i])]
        return self.dataset[self.indices[i]]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.dataset!r})"


def _flatten_arrays(dataset) -> tuple[tuple | None, np.ndarray | None]:
    """(arrays, index map) when ``dataset`` is array-backed (ArrayDataset, nested Subsets)."""
    index = None
    while isinstance(dataset, Subset):
        index = dataset.indices if index is None else dataset.indices[index]
        dataset = dataset.dataset
    if isinstance(dataset, ArrayDataset):
        return dataset.arrays, index
    return None, None


def default_collate(samples: list) -> Any:
    """Stack a list of samples into a batch.

    Tuples/lists are collated field by field (a tuple of batches), dicts key by key; arrays
    and numbers are stacked along a new axis 0 with ``np.stack``; strings stay a list.
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        n = len(first)
        for s in samples:
            if not isinstance(s, (tuple, list)) or len(s) != n:
                raise ValueError(
                    f"DataLoader: samples have different structures: {len(first)}-tuple vs {s!r:.80}"
                )
        return tuple(default_collate([s[k] for s in samples]) for k in range(n))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (str, bytes)) or first is None:
        return list(samples)
    try:
        return np.stack([np.asarray(s) for s in samples])
    except ValueError as e:
        shapes = sorted({np.shape(s) for s in samples})
        raise ValueError(
            f"DataLoader: cannot stack samples of shapes {shapes[:4]} into a batch; pass "
            f"'collate_fn' to batch samples of different shapes"
        ) from e


def detection_collate(samples: list) -> tuple:
    """Collate ``(image, target)`` samples whose targets differ in size (boxes per image):
    returns ``(images stacked to (B, C, H, W), [target, ...])``."""
    images = np.stack([np.asarray(s[0]) for s in samples])
    return images, [s[1] for s in samples]


class DataLoader:
    """Iterate over mini-batches of a dataset or of arrays.

    Args:
        dataset: a tuple/list of arrays with one common first dimension, a single array, an
            :class:`ArrayDataset`/:class:`Subset` of one, or any object with ``__len__`` and
            ``__getitem__(i)`` returning a sample (a tuple of arrays/numbers, a dict, ...).
        batch_size: samples per batch (>= 1). A batch larger than the data gives one batch.
        shuffle: draw a new random order at the start of every epoch (every ``iter()``).
        drop_last: drop the last batch when it has fewer than ``batch_size`` samples
            (by default it is kept).
        seed: ``None`` uses oxinet's shared generator (``oxinet.manual_seed``); an int
            gives this loader its own generator, so two loaders with the same seed yield
            the same sequence of epochs; a ``numpy.random.Generator`` is used as is.
        transform: optional callable applied to the first array of every batch (e.g. an
            augmentation :class:`~oxinet.data.transforms.Compose`).
        collate_fn: turns a list of samples into a batch for generic datasets
            (default :func:`default_collate`); array-backed datasets do not use it.

    Yields:
        For arrays: a tuple of batch arrays (one per input array, each of shape
        ``(B, *a.shape[1:])`` and its dtype), or a single array when a single array was
        given. Batches are new arrays (never views of the data). Generic datasets yield
        ``collate_fn(samples)``.

    Every sample appears exactly once per epoch (``len(loader)`` batches, or fewer samples
    with ``drop_last``).
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        seed=None,
        transform: Callable | None = None,
        collate_fn: Callable | None = None,
    ):
        who = "DataLoader"
        if isinstance(batch_size, bool):
            raise TypeError(f"{who}: 'batch_size' must be an int, got bool")
        try:
            batch_size = operator.index(batch_size)
        except TypeError:
            raise TypeError(
                f"{who}: 'batch_size' must be an int, got {type(batch_size).__name__}"
            ) from None
        if batch_size < 1:
            raise ValueError(f"{who}: 'batch_size' must be >= 1, got {batch_size}")
        if transform is not None and not callable(transform):
            raise TypeError(f"{who}: 'transform' must be callable, got {type(transform).__name__}")

        self._single = False
        if isinstance(dataset, np.ndarray):
            dataset = ArrayDataset(dataset, names=["dataset"])
            self._single = True
        elif isinstance(dataset, (tuple, list)):
            dataset = ArrayDataset(*dataset, names=[f"dataset[{i}]" for i in range(len(dataset))])
        elif not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"{who}: 'dataset' must be an array, a tuple of arrays or an object with "
                f"__len__ and __getitem__, got {type(dataset).__name__}"
            )
        n = len(dataset)
        if n == 0:
            raise ValueError(f"{who}: 'dataset' is empty (0 samples); nothing to iterate over")

        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.collate_fn = default_collate if collate_fn is None else collate_fn
        self._seed = SeedSource(seed, who)
        self._arrays, self._index = _flatten_arrays(dataset)

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return math.ceil(n / self.batch_size)

    def manual_seed(self, seed) -> "DataLoader":
        """Give this loader a new seed (restarts its own generator); returns self."""
        self._seed.reseed(seed, "DataLoader")
        return self

    def _epoch(self) -> tuple[np.ndarray | None, list[tuple[int, int]]]:
        """One epoch's sample order (None = 0..n-1; a new permutation when shuffling) and
        the (start, end) positions of its batches in that order."""
        n = len(self.dataset)
        order = self._seed.generator().permutation(n) if self.shuffle else None
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        return order, [(s, min(s + self.batch_size, n)) for s in range(0, stop, self.batch_size)]

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The dataset positions of every batch of one epoch (draws a new order when
        shuffling, exactly as iterating would)."""
        order, spans = self._epoch()
        for s, e in spans:
            yield np.arange(s, e) if order is None else order[s:e]

    def __iter__(self) -> Iterator:
        order, spans = self._epoch()
        arrays, base = self._arrays, self._index
        if base is not None:  # a Subset of arrays: map positions to rows of the arrays
            order = base if order is None else base[order]
        for s, e in spans:
            if arrays is not None:
                if order is None:  # sequential: a slice copy per array
                    batch = tuple(a[s:e].copy() for a in arrays)
                else:  # one fancy-index gather per array, no per-sample Python work
                    idx = order[s:e]
                    batch = tuple(a[idx] for a in arrays)
                if self.transform is not None:
                    batch = (self.transform(batch[0]),) + batch[1:]
                yield batch[0] if self._single else batch
            else:
                ids = range(s, e) if order is None else order[s:e].tolist()
                batch = self.collate_fn([self.dataset[int(i)] for i in ids])
                if self.transform is not None:
                    if isinstance(batch, tuple):
                        batch = (self.transform(batch[0]),) + batch[1:]
                    else:
                        batch = self.transform(batch)
                yield batch

    def __repr__(self) -> str:
        return (
            f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})"
        )


def _split_lengths(n: int, lengths: Sequence, who: str) -> list[int]:
    lengths = list(lengths)
    if not lengths:
        raise ValueError(f"{who}: 'lengths' must not be empty")
    if all(isinstance(x, (numbers.Integral, np.integer)) and not isinstance(x, bool) for x in lengths):
        ints = [int(x) for x in lengths]
        if any(x < 0 for x in ints):
            raise ValueError(f"{who}: 'lengths' must be >= 0, got {ints}")
        if sum(ints) != n:
            raise ValueError(
                f"{who}: 'lengths' {ints} sum to {sum(ints)} but the dataset has {n} samples"
            )
        return ints
    fr = [float(x) for x in lengths]
    if any(not (0.0 <= f <= 1.0) for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"{who}: 'lengths' must be integers summing to {n} or fractions in [0, 1] "
            f"summing to 1, got {lengths}"
        )
    # Like torch.utils.data.random_split: floor, then hand out the remainder round-robin.
    ints = [int(math.floor(n * f)) for f in fr]
    for i in range(n - sum(ints)):
        ints[i % len(ints)] += 1
    return ints


def random_split(dataset, lengths: Sequence, seed=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random :class:`Subset` s.

    ``lengths`` are integers summing to ``len(dataset)`` or fractions summing to 1 (floored,
    the remainder given one by one to the first subsets, as ``torch.utils.data.random_split``
    does). ``dataset`` may also be a tuple of arrays (wrapped in an :class:`ArrayDataset`).
    """
    who = "random_split"
    if isinstance(dataset, (tuple, list)):
        dataset = ArrayDataset(*dataset, names=[f"dataset[{i}]" for i in range(len(dataset))])
    elif isinstance(dataset, np.ndarray):
        dataset = ArrayDataset(dataset, names=["dataset"])
    n = len(dataset)
    sizes = _split_lengths(n, lengths, who)
    perm = make_generator(seed, who).permutation(n)
    out, start = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[start : start + s]))
        start += s
    return out
