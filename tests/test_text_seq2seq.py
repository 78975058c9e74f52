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


# ----------------------------------------------------------------------------- references


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_step(p, a, pa, mask, h, c, prev):
    """One decoder step from the course formulas (F63), loops over the batch and source
    positions: e = v . tanh(W_s h + W_a a + b), alpha = softmax over unmasked positions,
    context = sum alpha a, then the LSTM cell and the output layer."""
    B, Tx, _ = a.shape
    hs = h @ p["energy_s.weight"].T
    alpha = np.zeros((B, Tx))
    ctx = np.zeros((B, a.shape[2]))
    for b in range(B):
        e = np.array([(np.tanh(hs[b] + pa[b, t]) @ p["energy_v.weight"][0]) for t in range(Tx)])
        e = np.where(mask[b], -1e9, e)
        w = np.exp(e - e.max())
        alpha[b] = w / w.sum()
        for t in range(Tx):
            ctx[b] += alpha[b, t] * a[b, t]
    inp = np.concatenate([ctx, prev], -1)
    gates = inp @ p["cell.weight_ih"].T + p["cell.bias_ih"] + h @ p["cell.weight_hh"].T + p["cell.bias_hh"]
    i, f, g, o = np.split(gates, 4, axis=1)
    c2 = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h2 = _sigmoid(o) * np.tanh(c2)
    return h2 @ p["out.weight"].T + p["out.bias"], h2, c2, alpha


def test_step_matches_the_course_formulas():
    m = _model().double()
    p = {k: v.numpy() for k, v in m.state_dict().items()}
    rng = np.random.default_rng(3)
    x = rng.integers(3, 12, size=(3, 6))
    lengths = np.array([6, 3, 1])
    y_prev = rng.integers(0, 7, size=(3,))
    with ox.no_grad():
        state = m.encode(x, lengths)
        state["h"] = ox.tensor(rng.standard_normal((3, 10)))
        state["c"] = ox.tensor(rng.standard_normal((3, 10)))
        logits, new, alpha = m.step(state, y_prev)
    prev = p["tgt_emb.weight"][y_prev]
    ref = _np_step(p, state["a"].numpy(), state["pa"].numpy(), state["mask"].numpy(), state["h"].numpy(),
                   state["c"].numpy(), prev)
    for got, want in zip((logits, new["h"], new["c"], alpha), ref):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_gradients_match_finite_differences():
    """float64 gradients of a teacher-forced loss w.r.t. every parameter group the
    attention and the decoder touch (padding in the batch, two decoder steps)."""
    from helpers import check_grad, random_projection

    ox.manual_seed(0)
    m = AttentionNMT(9, 5, emb=3, enc_hidden=2, dec_hidden=3, energy_hidden=2).double()
    rng = np.random.default_rng(4)
    x = rng.integers(3, 9, size=(2, 4))
    lengths = np.array([4, 2])
    x[1, 2:] = 0
    y_in = rng.integers(0, 5, size=(2, 2))
    proj = random_projection((2, 2, 5), seed=5)
    params = dict(m.named_parameters())

    def loss():
        return float((m(x, lengths, y_in).numpy() * proj).sum())

    m.zero_grad()
    (m(x, lengths, y_in) * ox.tensor(proj)).sum().backward()
    for name in ("energy_s.weight", "energy_a.weight", "energy_a.bias", "energy_v.weight", "cell.weight_ih",
                 "cell.weight_hh", "cell.bias_hh", "out.weight", "encoder.weight_ih_l0_reverse"):
        prm = params[name]
        # eps 1e-4: energy_s gets gradients of ~1e-5 (h is 0 at step 0), where 1e-6 is noise
        check_grad(loss, prm.numpy(), prm.grad.numpy(), eps=1e-4, tol=1e-6)
