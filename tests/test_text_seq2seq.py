"""oxinet.text.seq2seq.AttentionNMT: shapes, masking of padding, and decoding with it."""

import numpy as np

import oxinet as ox
from oxinet.text import beam_search, greedy_search, sequence_log_prob
from oxinet.text.seq2seq import AttentionNMT


def _model(feed_previous=True):
    ox.manual_seed(0)
    return AttentionNMT(12, 7, emb=8, enc_hidden=6, dec_hidden=10, energy_hidden=4, feed_previous=feed_previous)


def _step(model):
    def step(state, tokens):
        with ox.no_grad():
            logits, state, _ = model.step(state, tokens)
        return logits.log_softmax(-1).numpy(), state

    return step


def test_forward_shape_and_padding_mask():
    m = _model()
    rng = np.random.default_rng(0)
    x = rng.integers(3, 12, size=(3, 6))
    lengths = np.array([6, 4, 1])
    x[1, 4:] = 0
    x[2, 1:] = 0
    y_in = rng.integers(0, 7, size=(3, 5))
    assert m(x, lengths, y_in).shape == (3, 5, 7)
    with ox.no_grad():
        state = m.encode(x, lengths)
        _, _, alpha = m.step(state, y_in[:, 0])
    a = alpha.numpy()
    assert np.allclose(a.sum(1), 1, atol=1e-6)
    assert np.abs(a[1, 4:]).max() < 1e-6 and np.abs(a[2, 1:]).max() < 1e-6
    # changing the padding does not change the output
    x2 = x.copy()
    x2[1, 4:] = 5
    with ox.no_grad():
        assert np.allclose(m(x, lengths, y_in).numpy()[1], m(x2, lengths, y_in).numpy()[1], atol=1e-5)


def test_beam_reorders_the_decoder_state():
    m = _model()
    x = np.random.default_rng(1).integers(3, 12, size=(1, 5))
    with ox.no_grad():
        state = m.encode(x, np.array([5]))
    step = _step(m)
    g, glp = greedy_search(step, state, 1, 2, max_len=6)
    b1 = beam_search(step, state, 1, 2, beam_width=1, max_len=6, alpha=0.0)
    g = g.tolist()
    assert b1.tokens == (g[: g.index(2)] if 2 in g else g)
    for h in beam_search(step, state, 1, 2, beam_width=4, max_len=6, alpha=0.0, return_all=True):
        # rescoring each hypothesis from the start gives its beam score only if the beam
        # carried the right decoder state along with it
        eos = 2 if len(h.tokens) < 6 else None
        assert np.isclose(sequence_log_prob(step, state, 1, h.tokens, eos), h.log_prob, atol=1e-5)
        assert h.log_prob >= -1e9


def test_without_feedback_beam_equals_greedy():
    m = _model(feed_previous=False)
    x = np.random.default_rng(2).integers(3, 12, size=(1, 5))
    with ox.no_grad():
        state = m.encode(x, np.array([5]))
    step = _step(m)
    g, _ = greedy_search(step, state, 1, None, max_len=5)
    b = beam_search(step, state, 1, None, beam_width=3, max_len=5, alpha=0.0)
    assert b.tokens == g.tolist()
