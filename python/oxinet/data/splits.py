"""Seeded train/dev/test splits, optionally stratified by class label.

The course splits data into train / dev (hold-out, cross-validation) / test sets that come
from the same distribution; with few samples per class, *stratification* keeps each class's
share the same in every split.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from oxinet.data._rng import make_generator
from oxinet.data.loader import _as_arrays


def _check_size(value, name: str, n: int, who: str) -> float | int:
    """A split size: a fraction in [0, 1) or an int count in [0, n]."""
    if isinstance(value, bool):
        raise TypeError(f"{who}: '{name}' must be a float fraction or an int count, got bool")
    if isinstance(value, (numbers.Integral, np.integer)):
        v = int(value)
        if not 0 <= v <= n:
            raise ValueError(f"{who}: '{name}' must be in [0, {n}] samples, got {v}")
        return v
    if isinstance(value, (numbers.Real, np.floating)):
        v = float(value)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{who}: '{name}' as a fraction must be in [0, 1), got {v}")
        return v
    raise TypeError(f"{who}: '{name}' must be a float fraction or an int count, got {type(value).__name__}")


def _counts(n: int, sizes: Sequence[float | int], names: Sequence[str], who: str) -> list[int]:
    """Sample counts for the held-out splits (fractions rounded up, like scikit-learn) and
    the first split (the remainder)."""
    held = []
    for s in sizes:
        held.append(s if isinstance(s, int) else int(math.ceil(s * n)))
    rest = n - sum(held)
    if rest < 0:
        desc = ", ".join(f"{nm}={s!r} -> {h}" for nm, s, h in zip(names, sizes, held))
        raise ValueError(f"{who}: the held-out splits ({desc}) need more than the {n} samples")
    return [rest] + held


def _apportion(class_counts: np.ndarray, split_totals: Sequence[int]) -> np.ndarray:
    """Integer table T[c, s] with row sums = class_counts, column sums = split_totals, and
    every entry the floor or the ceiling of the proportional share
    class_counts[c] * split_totals[s] / n (such a rounding always exists).

    Floors first; the leftover samples (one per cell at most) go to the largest fractional
    parts greedily, then augmenting paths (bipartite matching, rows = classes, columns =
    splits) place whatever the greedy pass could not."""
    counts = [int(c) for c in class_counts]
    totals = [int(t) for t in split_totals]
    n = sum(counts)
    nc, ns = len(counts), len(totals)
    table = np.zeros((nc, ns), np.int64)
    rem = np.zeros((nc, ns), np.int64)  # fractional part * n, exact
    for c in range(nc):
        for s in range(ns):
            table[c, s], rem[c, s] = divmod(counts[c] * totals[s], max(n, 1))
    row_need = np.asarray(counts) - table.sum(1)
    col_need = np.asarray(totals) - table.sum(0)
    extra = np.zeros((nc, ns), bool)
    for flat in np.argsort(-rem, axis=None, kind="stable"):
        c, s = divmod(int(flat), ns)
        if rem[c, s] > 0 and row_need[c] > 0 and col_need[s] > 0:
            extra[c, s] = True
            row_need[c] -= 1
            col_need[s] -= 1
    eligible = rem > 0
    while row_need.sum() > 0:
        # BFS from every row still short: row -> (eligible, unused cell) -> column;
        # column -> (used cell) -> row; stop at a column that still needs samples.
        start = [c for c in range(nc) if row_need[c] > 0]
        parent_col: dict[int, int] = {}  # column -> row it was reached from
        parent_row: dict[int, int] = {c: -1 for c in start}  # row -> column it was reached from
        frontier, found = list(start), None
        while frontier and found is None:
            nxt = []
            for c in frontier:
                for s in range(ns):
                    if eligible[c, s] and not extra[c, s] and s not in parent_col:
                        parent_col[s] = c
                        if col_need[s] > 0:
                            found = s
                            break
                        for c2 in range(nc):
                            if extra[c2, s] and c2 not in parent_row:
                                parent_row[c2] = s
                                nxt.append(c2)
                if found is not None:
                    break
            frontier = nxt
        if found is None:  # cannot happen for consistent totals; fall back to any cell
            c = start[0]
            s = int(np.argmax(col_need))
            table[c, s] += 1
            row_need[c] -= 1
            col_need[s] -= 1
            continue
        s = found
        col_need[s] -= 1
        while True:
            c = parent_col[s]
            extra[c, s] = True
            prev = parent_row[c]
            if prev == -1:
                row_need[c] -= 1
                break
            extra[c, prev] = False
            s = prev
    return table + extra


def split_indices(
    n: int,
    sizes: Sequence[int],
    stratify: Any = None,
    shuffle: bool = True,
    seed=None,
    who: str = "split_indices",
) -> list[np.ndarray]:
    """Partition ``range(n)`` into index arrays of the given ``sizes`` (which sum to n).

    With ``stratify`` (labels of length n), every class is split in proportion to the
    sizes (largest-remainder rounding; the totals are exact). Without ``shuffle`` the
    splits are consecutive ranges (stratification needs shuffling); with it, each index
    array comes in random order (classes mixed).
    """
    sizes = [int(s) for s in sizes]
    if sum(sizes) != n:
        raise ValueError(f"{who}: split sizes {sizes} do not sum to {n}")
    if not shuffle:
        if stratify is not None:
            raise ValueError(f"{who}: 'stratify' requires shuffle=True")
        bounds = np.cumsum([0] + sizes)
        return [np.arange(bounds[i], bounds[i + 1]) for i in range(len(sizes))]
    rng = make_generator(seed, who)
    if stratify is None:
        perm = rng.permutation(n)
        bounds = np.cumsum([0] + sizes)
        return [perm[bounds[i] : bounds[i + 1]] for i in range(len(sizes))]
    labels = np.asarray(stratify)
    if labels.shape[:1] != (n,):
        raise ValueError(
            f"{who}: 'stratify' has shape {labels.shape} but the arrays have {n} samples"
        )
    if labels.ndim > 1:  # one-hot or multi-column labels: stratify on the row pattern
        labels = labels.reshape(n, -1)
        _, labels = np.unique(labels, axis=0, return_inverse=True)
    classes, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=len(classes))
    table = _apportion(counts, sizes)
    perm = rng.permutation(n)
    # Group the permuted positions by class (stable sort keeps the random order inside).
    by_class = perm[np.argsort(inverse[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)])
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for c in range(len(classes)):
        members = by_class[starts[c] : starts[c + 1]]
        off = 0
        for s in range(len(sizes)):
            parts[s].append(members[off : off + table[c, s]])
            off += table[c, s]
    out = []
    for s in range(len(sizes)):
        idx = np.concatenate(parts[s]) if parts[s] else np.zeros(0, np.int64)
        out.append(idx[rng.permutation(len(idx))])  # mix the classes inside each split
    return out


def train_test_split(
    *arrays: Any, test_size=0.25, stratify: Any = None, shuffle: bool = True, seed=None
) -> list[np.ndarray]:
    """Split arrays (one common first dimension) into train and test parts.

    ``test_size`` is a fraction (rounded up to whole samples) or a count. Returns
    ``[a_train, a_test, b_train, b_test, ...]`` in the order of the arguments, like
    scikit-learn's ``train_test_split``. ``stratify`` (class labels, often ``y``) keeps
    every class's share equal in both parts; ``seed`` makes the split repeatable.
    """
    who = "train_test_split"
    arrs = _as_arrays(arrays, who)
    n = len(arrs[0])
    t = _check_size(test_size, "test_size", n, who)
    counts = _counts(n, [t], ["test_size"], who)
    idx = split_indices(n, counts, stratify, shuffle, seed, who)
    out = []
    for a in arrs:
        out.extend(a[i] for i in idx)
    return out


def train_dev_test_split(
    *arrays: Any, dev_size=0.1, test_size=0.1, stratify: Any = None, shuffle: bool = True, seed=None
) -> tuple:
    """Split arrays into train, dev (validation) and test parts.

    ``dev_size``/``test_size`` are fractions of all samples (rounded up) or counts; train
    gets the rest. Returns ``(train, dev, test)``; each is a tuple with one array per
    argument, or a single array when one array was given. ``stratify`` keeps the class
    shares equal across the three parts (to within one sample per class and part).
    """
    who = "train_dev_test_split"
    arrs = _as_arrays(arrays, who)
    n = len(arrs[0])
    d = _check_size(dev_size, "dev_size", n, who)
    t = _check_size(test_size, "test_size", n, who)
    counts = _counts(n, [d, t], ["dev_size", "test_size"], who)
    idx = split_indices(n, counts, stratify, shuffle, seed, who)
    parts = []
    for i in idx:
        sel = tuple(a[i] for a in arrs)
        parts.append(sel[0] if len(sel) == 1 else sel)
    return tuple(parts)
