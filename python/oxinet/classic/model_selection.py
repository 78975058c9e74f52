"""k-fold cross-validation and random hyperparameter search on log scales (INVENTORY F23).

Folds: ``k_fold_indices`` shuffles with a seeded generator (or keeps the order), then
cuts into k folds whose sizes differ by at most one; with ``stratify=y`` each class is
shuffled and dealt round-robin over the folds, so every fold keeps the class proportions
(to within one example per class).

Search scales (F23): a rate in [low, high] is drawn as ``r ~ U[log10 low, log10 high]``,
``value = 10**r``; a momentum-like beta in [low, high] (e.g. [0.9, 0.999]) is drawn by
sampling ``1 - beta`` on that log scale, ``beta = 1 - 10**r`` with
``r ~ U[log10(1 - high), log10(1 - low)]``, so 0.9 -> 0.99 and 0.99 -> 0.999 get equal
probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from oxinet.classic._validate import positive_int


def k_fold_indices(n: int, k: int = 5, *, shuffle: bool = True, seed: int | None = 0,
                   stratify=None):
    """List of ``(train_idx, val_idx)`` integer arrays for k-fold cross-validation.

    ``stratify``: optional (n,) labels for stratified folds. Every index is in exactly one
    validation fold.
    """
    op = "k_fold_indices"
    n = positive_int(n, "n", op)
    k = positive_int(k, "k", op, minimum=2)
    if k > n:
        raise ValueError(f"{op}: 'k' = {k} folds need at least k examples, got n = {n}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, np.int64)
    if stratify is None:
        order = rng.permutation(n) if shuffle else np.arange(n)
        sizes = np.full(k, n // k)
        sizes[: n % k] += 1
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        for f in range(k):
            fold_of[order[bounds[f]:bounds[f + 1]]] = f
    else:
        y = np.asarray(stratify)
        if y.shape != (n,):
            raise ValueError(f"{op}: 'stratify' must have shape ({n},), got {y.shape}")
        offset = 0
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            if shuffle:
                members = rng.permutation(members)
            # continue the round-robin where the previous class stopped: fold sizes stay balanced
            fold_of[members] = (offset + np.arange(members.size)) % k
            offset = (offset + members.size) % k
    all_idx = np.arange(n)
    return [(all_idx[fold_of != f], all_idx[fold_of == f]) for f in range(k)]


def accuracy(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def neg_mean_squared_error(y_true, y_pred) -> float:
    d = np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)
    return float(-np.mean(d * d))


def cross_val_score(make_model, X, y, *, k: int = 5, seed: int | None = 0, stratify: bool = False,
                    scoring=accuracy, shuffle: bool = True) -> np.ndarray:
    """Scores of a fresh model per fold: ``make_model()`` returns an object with
    ``fit(X, y)`` and ``predict(X)``; ``scoring(y_true, y_pred)`` (higher is better).
    Returns a (k,) array."""
    if not callable(make_model):
        raise TypeError(f"cross_val_score: 'make_model' must be callable, got {type(make_model).__name__}")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"cross_val_score: 'y' has {y.shape[0]} rows but 'X' has {X.shape[0]}")
    scores = []
    for tr, va in k_fold_indices(X.shape[0], k, shuffle=shuffle, seed=seed,
                                 stratify=y if stratify else None):
        model = make_model()
        model.fit(X[tr], y[tr])
        scores.append(scoring(y[va], model.predict(X[va])))
    return np.asarray(scores)


# ---------------------------------------------------------------- sampling scales

def _range(low, high, name, op, positive=True):
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or (positive and low <= 0):
        req = "0 < low <= high" if positive else "low <= high"
        raise ValueError(f"{op}: '{name}' range must satisfy {req}, got ({low}, {high})")
    return low, high


def sample_log_uniform(low: float, high: float, size=None, *, rng=None):
    """``10**r`` with ``r ~ U[log10 low, log10 high]`` (e.g. learning rates 1e-4..1)."""
    low, high = _range(low, high, "low/high", "sample_log_uniform")
    rng = np.random.default_rng(rng)
    return 10.0 ** rng.uniform(math.log10(low), math.log10(high), size)


def sample_one_minus_log_uniform(low: float, high: float, size=None, *, rng=None):
    """beta in [low, high] (< 1) with ``1 - beta`` log-uniform (momentum, EWMA betas)."""
    op = "sample_one_minus_log_uniform"
    low, high = _range(low, high, "low/high", op, positive=False)
    if high >= 1:
        raise ValueError(f"{op}: 'high' must be < 1, got {high}")
    rng = np.random.default_rng(rng)
    r = rng.uniform(math.log10(1 - high), math.log10(1 - low), size)
    return 1.0 - 10.0 ** r


@dataclass(frozen=True)
class LogUniform:
    """Search-space entry: log-uniform on [low, high]."""
    low: float
    high: float

    def sample(self, rng):
        return float(sample_log_uniform(self.low, self.high, rng=rng))


@dataclass(frozen=True)
class OneMinusLogUniform:
    """Search-space entry: beta in [low, high] with 1 - beta log-uniform."""
    low: float
    high: float

    def sample(self, rng):
        return float(sample_one_minus_log_uniform(self.low, self.high, rng=rng))


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class IntUniform:
    """Integer uniformly from low..high inclusive."""
    low: int
    high: int

    def sample(self, rng):
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class Choice:
    options: tuple

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]


@dataclass
class SearchResult:
    best_params: dict
    best_score: float
    trials: list = field(default_factory=list)  # [(params, score)] in the order tried


def random_search(evaluate, space: dict, n_trials: int = 20, *, seed: int | None = 0) -> SearchResult:
    """Random search: ``n_trials`` parameter dicts drawn from ``space`` (name -> entry with
    ``sample(rng)``: LogUniform, OneMinusLogUniform, Uniform, IntUniform, Choice, or a plain
    list for Choice), each scored by ``evaluate(**params)`` (higher is better; NaN counts as
    worst)."""
    op = "random_search"
    if not callable(evaluate):
        raise TypeError(f"{op}: 'evaluate' must be callable, got {type(evaluate).__name__}")
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{op}: 'space' must be a non-empty dict of name -> distribution")
    entries = {}
    for name, spec in space.items():
        if isinstance(spec, (list, tuple)):
            spec = Choice(tuple(spec))
        if not hasattr(spec, "sample"):
            raise TypeError(f"{op}: 'space' entry {name!r} must have a sample(rng) method or be a list")
        entries[name] = spec
    n_trials = positive_int(n_trials, "n_trials", op)
    rng = np.random.default_rng(seed)
    trials = []
    best, best_score = None, -math.inf
    for _ in range(n_trials):
        params = {name: spec.sample(rng) for name, spec in entries.items()}
        score = float(evaluate(**params))
        trials.append((params, score))
        if not math.isnan(score) and (best is None or score > best_score):
            best, best_score = params, score
    if best is None:
        best, best_score = trials[0][0], math.nan
    return SearchResult(best, best_score, trials)
