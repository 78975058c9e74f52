"""k-fold cross-validation and random search on log scales (F23)."""

import math

import numpy as np
import pytest

from oxinet.classic import (Choice, IntUniform, KNearestNeighbors, LogUniform, OneMinusLogUniform,
                            cross_val_score, k_fold_indices, random_search, sample_log_uniform,
                            sample_one_minus_log_uniform)


@pytest.mark.parametrize("n,k", [(10, 3), (23, 5), (5, 5)])
def test_k_fold_partitions(n, k):
    folds = k_fold_indices(n, k, seed=1)
    assert len(folds) == k
    val = np.concatenate([v for _, v in folds])
    np.testing.assert_array_equal(np.sort(val), np.arange(n))
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 1
    for tr, va in folds:
        assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == n


def test_k_fold_seeded_and_unshuffled():
    a = k_fold_indices(20, 4, seed=7)
    b = k_fold_indices(20, 4, seed=7)
    c = k_fold_indices(20, 4, seed=8)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))
    plain = k_fold_indices(10, 2, shuffle=False)
    np.testing.assert_array_equal(plain[0][1], np.arange(5))


def test_stratified_folds_keep_proportions():
    y = np.array([0] * 30 + [1] * 10 + [2] * 5)
    folds = k_fold_indices(len(y), 5, seed=0, stratify=y)
    for _, va in folds:
        counts = np.bincount(y[va], minlength=3)
        np.testing.assert_array_equal(counts, [6, 2, 1])
    val = np.concatenate([v for _, v in folds])
    np.testing.assert_array_equal(np.sort(val), np.arange(len(y)))


def test_cross_val_score_knn():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (40, 2)), rng.normal(5, 1, (40, 2))])
    y = np.repeat([0, 1], 40)
    scores = cross_val_score(lambda: KNearestNeighbors(3), X, y, k=4, stratify=True)
    assert scores.shape == (4,) and scores.min() > 0.9


def test_log_uniform_scale():
    rng = np.random.default_rng(0)
    s = sample_log_uniform(1e-4, 1.0, 20000, rng=rng)
    assert s.min() >= 1e-4 and s.max() <= 1.0
    r = np.log10(s)
    # r ~ U[-4, 0]: each decade gets a quarter of the samples
    counts = np.histogram(r, bins=4, range=(-4, 0))[0] / len(r)
    np.testing.assert_allclose(counts, 0.25, atol=0.02)


def test_one_minus_beta_scale():
    rng = np.random.default_rng(1)
    beta = sample_one_minus_log_uniform(0.9, 0.999, 20000, rng=rng)
    assert beta.min() >= 0.9 and beta.max() <= 0.999
    # as many draws in [0.9, 0.99] as in [0.99, 0.999]
    assert np.mean(beta < 0.99) == pytest.approx(0.5, abs=0.02)
    counts = np.histogram(np.log10(1 - beta), bins=2, range=(-3, -1))[0] / len(beta)
    np.testing.assert_allclose(counts, 0.5, atol=0.02)


def test_random_search_finds_the_best_region():
    def evaluate(lr, beta, layers, act):
        return -(math.log10(lr) + 2) ** 2 - (math.log10(1 - beta) + 2) ** 2 + (act == "relu") + 0 * layers

    space = {"lr": LogUniform(1e-5, 1.0), "beta": OneMinusLogUniform(0.9, 0.9999),
             "layers": IntUniform(2, 4), "act": Choice(("relu", "tanh"))}
    res = random_search(evaluate, space, n_trials=200, seed=0)
    assert len(res.trials) == 200
    assert res.best_score == max(s for _, s in res.trials)
    assert abs(math.log10(res.best_params["lr"]) + 2) < 0.5
    assert abs(math.log10(1 - res.best_params["beta"]) + 2) < 0.5
    assert res.best_params["act"] == "relu"
    assert all(p["layers"] in (2, 3, 4) for p, _ in res.trials)
    again = random_search(evaluate, space, n_trials=200, seed=0)
    assert again.best_params == res.best_params
    # plain lists are choices
    res2 = random_search(lambda a: a, {"a": [1, 5, 3]}, n_trials=10, seed=0)
    assert res2.best_params["a"] == 5


def test_model_selection_bad_input():
    with pytest.raises(ValueError, match="'k'"):
        k_fold_indices(3, 4)
    with pytest.raises(ValueError, match="'k'"):
        k_fold_indices(10, 1)
    with pytest.raises(ValueError, match="'stratify'"):
        k_fold_indices(10, 2, stratify=np.zeros(9))
    with pytest.raises(ValueError, match="'low/high'"):
        sample_log_uniform(0.0, 1.0)
    with pytest.raises(ValueError, match="'high'"):
        sample_one_minus_log_uniform(0.9, 1.0)
    with pytest.raises(TypeError, match="'evaluate'"):
        random_search(3, {"a": [1]})
    with pytest.raises(TypeError, match="'space'"):
        random_search(lambda a: a, {"a": 3})
    with pytest.raises(TypeError, match="'make_model'"):
        cross_val_score(None, np.zeros((4, 1)), np.zeros(4))
