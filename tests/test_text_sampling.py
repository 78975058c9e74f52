"""Sampling from a language model: seeding, temperature, top-k, stopping."""

import numpy as np
import pytest

import oxinet as ox
from oxinet.text import sample_next, sample_sequence


def _logits(seed=0, n=4, v=7):
    return np.random.default_rng(seed).normal(0, 2, size=(n, v))


def test_seed_makes_draws_repeatable():
    x = _logits()
    a = [sample_next(x, seed=5).tolist() for _ in range(3)]
    assert a[0] == a[1] == a[2]
    draws = {tuple(sample_next(x, seed=s).tolist()) for s in range(20)}
    assert len(draws) > 1
    ox.manual_seed(3)
    b = [sample_next(x).tolist() for _ in range(5)]
    ox.manual_seed(3)
    assert b == [sample_next(x).tolist() for _ in range(5)]


def test_temperature_zero_is_argmax():
    x = _logits(1, n=50)
    assert (sample_next(x, temperature=0) == x.argmax(1)).all()
    assert (sample_next(x, temperature=1e-6, seed=0) == x.argmax(1)).all()
    assert (sample_next(x, top_k=1, seed=0) == x.argmax(1)).all()


def test_frequencies_follow_softmax():
    x = np.array([1.0, 0.0, -1.0, 2.0])
    rng = np.random.default_rng(0)
    draws = np.array([sample_next(np.tile(x, (1000, 1)), seed=rng) for _ in range(20)]).ravel()
    freq = np.bincount(draws, minlength=4) / draws.size
    p = np.exp(x) / np.exp(x).sum()
    assert np.abs(freq - p).max() < 0.015
    # temperature 2 flattens: the most likely token becomes rarer
    hot = np.array([sample_next(np.tile(x, (1000, 1)), temperature=2.0, seed=rng) for _ in range(20)]).ravel()
    assert (hot == 3).mean() < freq[3] - 0.05


def test_top_k_restricts_support():
    x = _logits(2, n=1, v=10)[0]
    top3 = set(np.argsort(-x)[:3].tolist())
    draws = sample_next(np.tile(x, (5000, 1)), temperature=5.0, top_k=3, seed=0)
    assert set(draws.tolist()) == top3
    never = int(np.argmax(x))
    d = sample_next(np.tile(x, (2000, 1)), temperature=3.0, seed=1, forbid=never)
    assert never not in set(d.tolist())


def test_sample_sequence_stops_at_eos_or_length():
    v, eos = 5, 0
    # always prefers token (last + 1) % v: from bos 2 -> 3, 4, 0 (eos)
    def step(state, tokens):
        logits = np.full((tokens.size, v), -50.0)
        logits[np.arange(tokens.size), (tokens + 1) % v] = 0.0
        return logits, state

    assert sample_sequence(step, None, 2, eos, max_len=10, seed=0) == [3, 4, 0]
    assert sample_sequence(step, None, 2, None, max_len=4, seed=0) == [3, 4, 0, 1]
    many = sample_sequence(step, None, np.array([2, 4]), eos, max_len=10, seed=0)
    assert many == [[3, 4, 0], [0]]


def test_sampling_bad_inputs():
    with pytest.raises(ValueError, match="'temperature'"):
        sample_next(np.zeros(3), temperature=-1)
    with pytest.raises(ValueError, match="'top_k'"):
        sample_next(np.zeros(3), top_k=0)
    with pytest.raises(ValueError, match="'logits'"):
        sample_next(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="'max_len'"):
        sample_sequence(lambda s, t: (np.zeros((1, 2)), s), None, 0, max_len=0)
