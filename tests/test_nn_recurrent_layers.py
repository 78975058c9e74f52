"""Embedding and recurrent layers: PyTorch's parameter names/shapes/initialisation, outputs
vs NumPy step loops written from the gate equations, padded batches with ``lengths`` vs
running each sequence alone, dropout between layers, and float64 gradient checks through
every Module (train and eval mode)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.nn import functional as F


def _T(a, requires_grad=False):
    """A Tensor keeping the array's float dtype (ox.tensor would cast to the default float32)."""
    a = np.asarray(a)
    return ox.tensor(a, dtype=a.dtype if a.dtype.kind == "f" else None, requires_grad=requires_grad)


def _x(*shape, seed=0):
    return _T(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _ref_layer(mode, x, h, c, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    """One direction, time-major x (T, B, D); returns (y (T, B, H), h, c)."""
    H = w_hh.shape[1]
    ys = []
    for t in range(x.shape[0]):
        gi = x[t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if mode == "LSTM":
            z = gi + gh
            i, f, g, o = _sig(z[:, :H]), _sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), _sig(z[:, 3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
        elif mode == "GRU":
            r = _sig(gi[:, :H] + gh[:, :H])
            zg = _sig(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            h = (1 - zg) * n + zg * h
        else:
            a = gi + gh
            h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
        ys.append(h)
    return np.stack(ys), h, c


def _ref_module(m, x):
    """Stacked / bidirectional reference from the module's named parameters (no dropout)."""
    mode = "LSTM" if isinstance(m, nn.LSTM) else "GRU" if isinstance(m, nn.GRU) else "RNN"
    p = {n: t.numpy() for n, t in m.named_parameters()}
    T, B, _ = x.shape
    H = m.hidden_size
    inp = x
    hs, cs = [], []
    for k in range(m.num_layers):
        outs = []
        for sfx in ("", "_reverse")[: 2 if m.bidirectional else 1]:
            xi = inp[::-1] if sfx else inp
            z = np.zeros((B, H))
            b_ih = p.get(f"bias_ih_l{k}{sfx}", np.zeros(p[f"weight_ih_l{k}{sfx}"].shape[0]))
            b_hh = p.get(f"bias_hh_l{k}{sfx}", np.zeros(p[f"weight_hh_l{k}{sfx}"].shape[0]))
            y, h, c = _ref_layer(mode, xi, z, z, p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"], b_ih, b_hh,
                                 getattr(m, "nonlinearity", "tanh"))
            outs.append(y[::-1] if sfx else y)
            hs.append(h)
            cs.append(c)
        inp = np.concatenate(outs, -1)
    return inp, np.stack(hs), np.stack(cs)


# ----------------------------------------------------------------------------- embedding


def test_embedding_params_init_padding_and_grad():
    ox.manual_seed(0)
    e = nn.Embedding(50, 8, padding_idx=3)
    assert [n for n, _ in e.named_parameters()] == ["weight"] and e.weight.shape == (50, 8)
    w = e.weight.numpy()
    assert np.all(w[3] == 0) and 0.7 < w.std() < 1.3  # N(0, 1)
    e.double()
    idx = np.array([[1, 3, 1], [4, 0, 3]])
    y = e(idx)
    assert y.shape == (2, 3, 8)
    np.testing.assert_array_equal(y.numpy(), e.weight.numpy()[idx])
    g = np.random.default_rng(0).standard_normal(y.shape)
    (y * _T(g)).sum().backward()
    ref = np.zeros((50, 8))
    np.add.at(ref, idx, g)
    ref[3] = 0
    np.testing.assert_allclose(e.weight.grad.numpy(), ref, rtol=1e-12)
    e_plain = nn.Embedding(6, 3).double()  # the padding row is excluded from gradients by design
    assert ox.gradcheck(lambda: e_plain(idx), (), params=[e_plain.weight])


def test_embedding_from_pretrained_freeze_and_options():
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    e = nn.Embedding.from_pretrained(table)
    assert not e.weight.requires_grad
    np.testing.assert_array_equal(e(np.array([2])).numpy(), table[[2]])
    table[0, 0] = 99  # a copy
    assert e.weight.numpy()[0, 0] == 0
    e2 = nn.Embedding.from_pretrained(table, freeze=False)
    assert e2.weight.requires_grad
    # scale_grad_by_freq divides each row's gradient by its count in the batch
    e3 = nn.Embedding(5, 2, scale_grad_by_freq=True).double()
    e3(np.array([1, 1, 2])).sum().backward()
    np.testing.assert_allclose(e3.weight.grad.numpy()[[1, 2]], np.ones((2, 2)))
    # max_norm renormalises the looked-up rows in place
    e4 = nn.Embedding.from_pretrained(np.array([[3.0, 4.0], [0.3, 0.4]]), max_norm=1.0)
    out = e4(np.array([0, 1])).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 0.5], rtol=1e-6)
    with pytest.raises(TypeError, match="'input'"):
        e2(np.array([0.5]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(4, 2, padding_idx=7)


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("cls,G", [(nn.RNN, 1), (nn.GRU, 3), (nn.LSTM, 4)])
def test_rnn_parameter_names_shapes_init(cls, G):
    ox.manual_seed(0)
    m = cls(5, 7, num_layers=2, bidirectional=True)
    names = [n for n, _ in m.named_parameters()]
    expected = []
    for k in range(2):
        for sfx in ("", "_reverse"):
            expected += [f"weight_ih_l{k}{sfx}", f"weight_hh_l{k}{sfx}", f"bias_ih_l{k}{sfx}", f"bias_hh_l{k}{sfx}"]
    assert names == expected
    assert m.weight_ih_l0.shape == (G * 7, 5) and m.weight_ih_l1_reverse.shape == (G * 7, 14)
    assert m.weight_hh_l1.shape == (G * 7, 7) and m.bias_hh_l0_reverse.shape == (G * 7,)
    bound = 1 / math.sqrt(7)
    for _, p in m.named_parameters():
        assert np.abs(p.numpy()).max() <= bound
    nb = cls(3, 4, bias=False)
    assert [n for n, _ in nb.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("cls,G", [(nn.RNNCell, 1), (nn.GRUCell, 3), (nn.LSTMCell, 4)])
def test_cell_parameter_names_shapes(cls, G):
    m = cls(5, 6)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [
        ("weight_ih", (G * 6, 5)), ("weight_hh", (G * 6, 6)), ("bias_ih", (G * 6,)), ("bias_hh", (G * 6,))]


# ----------------------------------------------------------------------------- forward vs reference


@pytest.mark.parametrize("cls,kw", [
    (nn.LSTM, dict(num_layers=2, bidirectional=True)),
    (nn.GRU, dict(num_layers=2)),
    (nn.GRU, dict(bidirectional=True, bias=False)),
    (nn.RNN, dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    (nn.RNN, dict()),
])
def test_rnn_modules_match_numpy_reference(cls, kw):
    ox.manual_seed(1)
    m = cls(3, 4, **kw).double()
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out, hn = m(_T(x))
    y_ref, h_ref, c_ref = _ref_module(m, x)
    np.testing.assert_allclose(out.numpy(), y_ref, rtol=1e-10, atol=1e-12)
    if cls is nn.LSTM:
        hn, cn = hn
        np.testing.assert_allclose(cn.numpy(), c_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hn.numpy(), h_ref, rtol=1e-10, atol=1e-12)
    # batch_first and unbatched agree with the time-major result
    m.batch_first = True
    out_bf, _ = m(_T(x.transpose(1, 0, 2)))
    np.testing.assert_allclose(out_bf.numpy(), y_ref.transpose(1, 0, 2), rtol=1e-12, atol=1e-14)
    m.batch_first = False
    out_u, h_u = m(_T(x[:, 0]))
    np.testing.assert_allclose(out_u.numpy(), y_ref[:, 0], rtol=1e-12, atol=1e-14)


def test_lstm_lengths_match_running_each_sequence_alone():
    ox.manual_seed(2)
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    rng = np.random.default_rng(3)
    lengths = np.array([5, 2, 4])
    x = rng.standard_normal((3, 5, 3))
    for b, n in enumerate(lengths):
        x[b, n:] = 7.0  # padding garbage must not matter
    out, (hn, cn) = m(_T(x), lengths=lengths)
    for b, n in enumerate(lengths):
        o1, (h1, c1) = m(_T(x[b:b + 1, :n]))
        np.testing.assert_allclose(out.numpy()[b, :n], o1.numpy()[0], rtol=1e-10, atol=1e-12)
        assert np.all(out.numpy()[b, n:] == 0)
        np.testing.assert_allclose(hn.numpy()[:, b], h1.numpy()[:, 0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cn.numpy()[:, b], c1.numpy()[:, 0], rtol=1e-10, atol=1e-12)
    # gradients with lengths too
    xt = _T(x, requires_grad=True)
    assert ox.gradcheck(lambda v: m(v, lengths=lengths)[0], (xt,), atol=1e-6)


def test_initial_states_and_gradients_reach_them():
    m = nn.LSTM(2, 3, num_layers=2).double()
    x = _x(4, 2, 2)
    h0, c0 = _x(2, 2, 3, seed=1), _x(2, 2, 3, seed=2)
    assert ox.gradcheck(lambda a, h, c: m(a, (h, c))[1], (x, h0, c0))
    g = nn.GRU(2, 3, bidirectional=True).double()
    assert ox.gradcheck(lambda a, h: g(a, h)[0], (x, _x(2, 2, 3, seed=4)))


# ----------------------------------------------------------------------------- gradients through modules


RNN_MODULES = [
    ("rnn_tanh", lambda: nn.RNN(3, 4), (4, 2, 3)),
    ("rnn_relu_bi_2l", lambda: nn.RNN(3, 3, 2, nonlinearity="relu", bidirectional=True), (3, 2, 3)),
    ("gru_2l_bf", lambda: nn.GRU(3, 4, 2, batch_first=True), (2, 4, 3)),
    ("gru_bi_nobias", lambda: nn.GRU(3, 3, bidirectional=True, bias=False), (3, 2, 3)),
    ("lstm", lambda: nn.LSTM(3, 4), (4, 2, 3)),
    ("lstm_2l_bi_bf", lambda: nn.LSTM(3, 3, 2, bidirectional=True, batch_first=True), (2, 3, 3)),
    ("lstm_dropout0_split", lambda: nn.LSTM(2, 3, 3, dropout=0.0), (3, 2, 2)),
]


@pytest.mark.parametrize("name,make,shape", RNN_MODULES, ids=[c[0] for c in RNN_MODULES])
def test_rnn_module_gradcheck(name, make, shape):
    ox.manual_seed(5)
    m = make().double()
    x = _x(*shape, seed=6)
    for mode in (True, False):
        m.train(mode)
        assert ox.gradcheck(lambda v: m(v)[0], (x,), params=list(m.named_parameters()), atol=1e-6)


@pytest.mark.parametrize("make", [lambda: nn.RNNCell(3, 4), lambda: nn.RNNCell(3, 4, nonlinearity="relu"),
                                  lambda: nn.GRUCell(3, 4), lambda: nn.LSTMCell(3, 4),
                                  lambda: nn.GRUCell(3, 4, bias=False)])
def test_cell_gradcheck_and_unbatched(make):
    ox.manual_seed(7)
    m = make().double()
    x, h = _x(2, 3), _x(2, 4, seed=1)
    if isinstance(m, nn.LSTMCell):
        c = _x(2, 4, seed=2)
        assert ox.gradcheck(lambda a, b, cc: m(a, (b, cc)), (x, h, c), params=list(m.named_parameters()))
        h1, c1 = m(x[0], (h[0], c[0]))
        np.testing.assert_allclose(h1.numpy(), m(x, (h, c))[0].numpy()[0], rtol=1e-12)
        assert m(x)[0].shape == (2, 4)
    else:
        assert ox.gradcheck(lambda a, b: m(a, b), (x, h), params=list(m.named_parameters()))
        np.testing.assert_allclose(m(x[0], h[0]).numpy(), m(x, h).numpy()[0], rtol=1e-12)
        assert m(x).shape == (2, 4)


def test_cell_loop_matches_fused_layer():
    ox.manual_seed(8)
    lstm = nn.LSTM(3, 4).double()
    cell = nn.LSTMCell(3, 4).double()
    for a, b in (("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"), ("bias_ih", "bias_ih_l0"),
                 ("bias_hh", "bias_hh_l0")):
        getattr(cell, a).numpy()[...] = getattr(lstm, b).numpy()
    x = _T(np.random.default_rng(0).standard_normal((5, 2, 3)))
    out, (hn, cn) = lstm(x)
    h = c = None
    for t in range(5):
        h, c = cell(x[t], None if h is None else (h, c))
        np.testing.assert_allclose(h.numpy(), out.numpy()[t], rtol=1e-10, atol=1e-12)


def test_dropout_between_layers():
    ox.manual_seed(9)
    m = nn.GRU(3, 5, num_layers=2, dropout=0.5).double()
    x = _T(np.random.default_rng(0).standard_normal((4, 2, 3)))
    m.eval()
    y_eval = m(x)[0].numpy()
    np.testing.assert_allclose(y_eval, _ref_module(m, x.numpy())[0], rtol=1e-10)
    m.train()
    y1, y2 = m(x)[0].numpy(), m(x)[0].numpy()
    assert not np.allclose(y1, y_eval) and not np.allclose(y1, y2)
    # with a fixed seed, the train-mode graph (per-layer kernels + dropout) is differentiable
    xt = _T(x.numpy(), requires_grad=True)

    def f(v):
        ox.manual_seed(123)
        return m(v)[0]

    assert ox.gradcheck(f, (xt,), params=list(m.named_parameters()), atol=1e-6)
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(2, 2, dropout=1.5)


def test_rnn_bad_input_names_argument():
    m = nn.LSTM(3, 4)
    with pytest.raises(ValueError, match="'input'"):
        m(ox.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match="hx"):
        m(ox.zeros((5, 2, 3)), ox.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="'h0'"):
        nn.GRU(3, 4)(ox.zeros((5, 2, 3)), ox.zeros((2, 2, 4)))


def test_lstm_trains_to_count_ones():
    """An LSTM + Linear learns the fraction of ones in a binary sequence of 8 (regression;
    the target's variance is 1/32 ~ 0.031, predicting the mean scores that)."""
    ox.manual_seed(0)
    rng = np.random.default_rng(0)
    lstm, head = nn.LSTM(1, 16, batch_first=True), nn.Linear(16, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = ox.optim.Adam(params, lr=2e-2)
    for _ in range(150):
        x = (rng.random((32, 8, 1)) < 0.5).astype(np.float32)
        out, (hn, _) = lstm(_T(x))
        loss = F.mse_loss(head(hn[0]), _T(x.sum((1, 2))[:, None] / 8))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.item()) < 0.003


def test_packed_sequence_helpers_match_lengths_argument():
    from oxinet.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence, pack_sequence

    ox.manual_seed(10)
    m = nn.GRU(2, 3, batch_first=True, bidirectional=True).double()
    rng = np.random.default_rng(0)
    seqs = [_T(rng.standard_normal((n, 2)), requires_grad=True) for n in (4, 2, 3)]
    padded = pad_sequence(seqs, batch_first=True)
    assert padded.shape == (3, 4, 2) and np.all(padded.numpy()[1, 2:] == 0)
    packed = pack_padded_sequence(padded, [4, 2, 3], batch_first=True, enforce_sorted=False)
    out, h = m(packed)
    y, lens = pad_packed_sequence(out, batch_first=True)
    ref, h_ref = m(padded, lengths=np.array([4, 2, 3]))
    np.testing.assert_array_equal(y.numpy(), ref.numpy())
    np.testing.assert_array_equal(h.numpy(), h_ref.numpy())
    assert lens.numpy().tolist() == [4, 2, 3]
    y.sum().backward()
    assert seqs[1].grad.shape == (2, 2)
    y2, _ = pad_packed_sequence(out, batch_first=False, padding_value=-1.0, total_length=5)
    assert y2.shape == (5, 3, 6) and np.all(y2.numpy()[2:, 1] == -1.0)
    with pytest.raises(ValueError, match="sorted"):
        pack_padded_sequence(padded, [2, 4, 3], batch_first=True)
    ps = pack_sequence([s.detach() for s in seqs], enforce_sorted=False)
    assert ps.data.shape == (4, 3, 2) and not ps.batch_first
