"""Greedy/beam search against exhaustive search on a tiny model, and CTC decoding."""

import itertools
import math

import numpy as np
import pytest

from oxinet.text import (
    beam_search, ctc_beam_decode, ctc_collapse, ctc_greedy_decode, greedy_search, sequence_log_prob,
)

V, EOS, BOS, MAXLEN = 4, 0, 4, 4


def _table(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(MAXLEN, V + 1, V))
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _model(table):
    """A position-dependent bigram model: the state is the position of each hypothesis
    (so beam search has to reorder it correctly)."""

    def step(state, tokens):
        pos = state
        return table[pos, tokens], pos + 1

    return step


def _exhaustive(table, alpha):
    best = None
    for length in range(1, MAXLEN + 1):
        for seq in itertools.product(range(V), repeat=length):
            if EOS in seq[:-1]:
                continue
            if length < MAXLEN and seq[-1] != EOS:
                continue
            prev, lp = BOS, 0.0
            for t, y in enumerate(seq):
                lp += table[t, prev, y]
                prev = y
            score = lp / length**alpha
            toks = list(seq[:-1]) if seq[-1] == EOS else list(seq)
            if best is None or score > best[0]:
                best = (score, toks, lp)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_beam_with_full_width_is_exhaustive(seed, alpha):
    table = _table(seed)
    h = beam_search(_model(table), np.zeros(1, np.int64), BOS, EOS, beam_width=V**MAXLEN, max_len=MAXLEN,
                    alpha=alpha)
    score, toks, lp = _exhaustive(table, alpha)
    assert h.tokens == toks
    assert h.score == pytest.approx(score)
    assert h.log_prob == pytest.approx(lp)


@pytest.mark.parametrize("seed", range(6))
def test_beam_width_one_is_greedy(seed):
    table = _table(seed)
    toks, lp = greedy_search(_model(table), np.zeros(1, np.int64), BOS, EOS, max_len=MAXLEN)
    h = beam_search(_model(table), np.zeros(1, np.int64), BOS, EOS, beam_width=1, max_len=MAXLEN, alpha=0.0)
    toks = toks.tolist()
    want = toks[: toks.index(EOS)] if EOS in toks else toks
    assert h.tokens == want
    assert h.log_prob == pytest.approx(lp)


def test_wider_beam_never_worse():
    for seed in range(10):
        table = _table(seed)
        s = [beam_search(_model(table), np.zeros(1, np.int64), BOS, EOS, beam_width=b, max_len=MAXLEN,
                         alpha=0.0).score for b in (1, 2, 64)]
        assert s[2] >= s[0] - 1e-12 and s[2] >= s[1] - 1e-12


def test_length_normalisation_prefers_longer():
    # from BOS: EOS at once has p = 0.4 (log -0.92); token 1 has 0.6 and then a sure chain
    # 1 -> 2 -> EOS with p 0.9 each: total log(0.6 * 0.9 * 0.9) = -0.72 ... make the long one worse in total
    lp = np.full((V + 1, V), -30.0)
    lp[BOS, EOS], lp[BOS, 1] = math.log(0.5), math.log(0.5)
    lp[1, 2], lp[1, EOS] = math.log(0.8), math.log(0.2)
    lp[2, EOS], lp[2, 3] = math.log(0.8), math.log(0.2)

    def step(state, tokens):
        return lp[tokens], state

    short = beam_search(step, None, BOS, EOS, beam_width=3, max_len=5, alpha=0.0)
    long = beam_search(step, None, BOS, EOS, beam_width=3, max_len=5, alpha=1.0)
    assert short.tokens == []  # log 0.5 = -0.69 > log(0.5 * 0.8 * 0.8) = -1.14
    assert long.tokens == [1, 2]  # -1.14 / 3 = -0.38 > -0.69 / 1
    allh = beam_search(step, None, BOS, EOS, beam_width=3, max_len=5, alpha=1.0, return_all=True)
    assert [h.score for h in allh] == sorted((h.score for h in allh), reverse=True)


@pytest.mark.parametrize("seed", range(3))
def test_sequence_log_prob_and_error_analysis(seed):
    table = _table(seed)
    step = _model(table)
    h = beam_search(step, np.zeros(1, np.int64), BOS, EOS, beam_width=2, max_len=MAXLEN, alpha=0.0)
    finished_with_eos = len(h.tokens) < MAXLEN
    lp = sequence_log_prob(step, np.zeros(1, np.int64), BOS, h.tokens, EOS if finished_with_eos else None)
    assert lp == pytest.approx(h.log_prob)
    # the exhaustive optimum y*: P(y*|x) >= P(y^|x), so a miss by the beam is the search's fault
    _, best, best_lp = _exhaustive(table, 0.0)
    ends = len(best) < MAXLEN
    assert sequence_log_prob(step, np.zeros(1, np.int64), BOS, best, EOS if ends else None) == pytest.approx(best_lp)
    assert best_lp >= lp - 1e-12


def test_greedy_batched():
    table = _table(0)
    step = _model(table)
    toks, lp = greedy_search(step, np.zeros(3, np.int64), np.full(3, BOS), EOS, max_len=MAXLEN)
    one, lp1 = greedy_search(step, np.zeros(1, np.int64), BOS, EOS, max_len=MAXLEN)
    assert toks.shape[0] == 3 and (toks[:, : one.size] == one).all()
    assert np.allclose(lp, lp1)


def test_decoding_bad_inputs():
    with pytest.raises(ValueError, match="'beam_width'"):
        beam_search(lambda s, t: (np.zeros((1, 2)), s), None, 0, beam_width=0)
    with pytest.raises(ValueError, match="'step'"):
        beam_search(lambda s, t: (np.zeros(2), s), None, 0)
    with pytest.raises(ValueError, match="'max_len'"):
        greedy_search(lambda s, t: (np.zeros((1, 2)), s), None, 0, max_len=0)


# --- CTC --------------------------------------------------------------------------------


def test_ctc_collapse_course_example():
    chars = "_ thequick"
    path = [chars.index(c) for c in "ttt_h_eee___ ___qqq__"]
    assert "".join(chars[i] for i in ctc_collapse(path, blank=0)) == "the q"
    assert ctc_collapse([1, 1, 0, 1, 2, 2], 0) == [1, 1, 2]


def test_ctc_greedy_hand_case():
    p = np.full((6, 3), 0.1)
    for t, c in enumerate([1, 1, 0, 1, 2, 2]):
        p[t, c] = 0.8
    lp = np.log(p / p.sum(1, keepdims=True))
    assert ctc_greedy_decode(lp) == [1, 1, 2]
    batch = np.stack([lp, lp[::-1]], axis=1)
    assert ctc_greedy_decode(batch, [6, 3]) == [[1, 1, 2], [2, 1]]


def _exhaustive_ctc(lp):
    t, c = lp.shape
    tot = {}
    for path in itertools.product(range(c), repeat=t):
        key = tuple(ctc_collapse(path, 0))
        tot[key] = tot.get(key, 0.0) + math.exp(sum(lp[i, s] for i, s in enumerate(path)))
    return tot


@pytest.mark.parametrize("seed", range(5))
def test_ctc_prefix_beam_matches_exhaustive(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(5, 3))
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    tot = _exhaustive_ctc(lp)
    best = max(tot, key=tot.get)
    labels, score = ctc_beam_decode(lp, beam_width=100, return_scores=True)
    assert tuple(labels) == best
    assert score == pytest.approx(math.log(tot[best]))


def test_ctc_beam_beats_greedy_when_alignments_add_up():
    # frame-wise: blank 0.6, 'a' 0.4 each frame -> greedy "" (p 0.36) but "a" has 0.64 - ... = 0.64
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert ctc_greedy_decode(lp) == []
    # P("a") = 0.4*0.4 + 0.4*0.6 + 0.6*0.4 = 0.64 > P("") = 0.36
    assert ctc_beam_decode(lp, beam_width=4) == [1]


def test_ctc_beam_matches_ctc_loss():
    import oxinet as ox

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 1, 4))
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    labels, score = ctc_beam_decode(lp, beam_width=64, return_scores=True)
    labels = labels[0]
    loss = ox.nn.CTCLoss(blank=0, reduction="sum")(
        ox.tensor(lp), ox.tensor(np.asarray([labels], np.int64)), ox.tensor(np.array([6])),
        ox.tensor(np.array([len(labels)])))
    assert -float(loss.item()) == pytest.approx(score[0], rel=1e-6)


def test_ctc_bad_inputs():
    with pytest.raises(ValueError, match="'log_probs'"):
        ctc_greedy_decode(np.zeros(3))
    with pytest.raises(ValueError, match="'input_lengths'"):
        ctc_beam_decode(np.zeros((3, 1, 2)), [5])
