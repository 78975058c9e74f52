"""Stacked and bidirectional recurrent layers (INVENTORY F51) against a NumPy
composition of per-layer reference loops, with PyTorch's weight names/order, lengths,
and float64 finite-difference gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet.ops as F
from helpers import check_grad, random_projection
from test_rnn import GATES, ref_seq

KINDS = ["lstm", "gru", "rnn_tanh"]


def make_weights(kind, D, H, L, dirs, bias=True, seed=0):
    """Dict keyed by PyTorch's parameter names, in nn.LSTM's registration order."""
    rng = np.random.default_rng(seed)
    G = GATES[kind]
    w = {}
    for k in range(L):
        din = D if k == 0 else dirs * H
        for sfx in ("", "_reverse")[:dirs]:
            w[f"weight_ih_l{k}{sfx}"] = rng.standard_normal((G * H, din)) * 0.5
            w[f"weight_hh_l{k}{sfx}"] = rng.standard_normal((G * H, H)) * 0.5
            if bias:
                w[f"bias_ih_l{k}{sfx}"] = rng.standard_normal(G * H) * 0.3
                w[f"bias_hh_l{k}{sfx}"] = rng.standard_normal(G * H) * 0.3
    return w


def ref_stack(kind, x, h0, c0, w, L, dirs, lengths=None):
    """Layer by layer; the reverse direction reads each sequence backwards within its length."""
    T, B, _ = x.shape
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    inp = x
    hn, cn = [], []
    for k in range(L):
        outs = []
        for d in range(dirs):
            sfx = "_reverse" if d else ""
            i = k * dirs + d
            args = (w[f"weight_ih_l{k}{sfx}"], w[f"weight_hh_l{k}{sfx}"],
                    w.get(f"bias_ih_l{k}{sfx}"), w.get(f"bias_hh_l{k}{sfx}"))
            h_i = None if h0 is None else h0[i]
            c_i = None if c0 is None else c0[i]
            if d == 0:
                y, h, c = ref_seq(kind, inp, h_i, c_i, *args, lengths=lengths)
            else:
                rev = np.zeros_like(inp)
                for b in range(B):
                    rev[:lens[b], b] = inp[:lens[b], b][::-1]
                yr, h, c = ref_seq(kind, rev, h_i, c_i, *args, lengths=lengths)
                y = np.zeros_like(yr)
                for b in range(B):
                    y[:lens[b], b] = yr[:lens[b], b][::-1]
            outs.append(y)
            hn.append(h)
            cn.append(c)
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(hn), np.stack(cn)


def call(kind, x, h0, c0, w, L, bidir, **kw):
    if kind == "lstm":
        return F.lstm_stack(x, h0, c0, w, L, bidir, **kw)
    if kind == "gru":
        out = F.gru_stack(x, h0, w, L, bidir, **kw)
    else:
        out = F.rnn_stack(x, h0, w, L, bidir, nonlinearity=kind[4:], **kw)
    return (out[0], out[1], None) + tuple(out[2:])


def call_backward(kind, dy, dh, dc, cache):
    if kind == "lstm":
        return F.lstm_stack_backward(dy, dh, dc, cache)
    f = F.gru_stack_backward if kind == "gru" else F.rnn_stack_backward
    dx, dh0, dw = f(dy, dh, cache)
    return dx, dh0, None, dw


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("L,bidir", [(1, True), (2, False), (2, True)])
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]])
def test_stack_matches_composed_reference(kind, L, bidir, lengths):
    rng = np.random.default_rng(L * 10 + bidir)
    T, B, D, H = 5, 3, 4, 3
    dirs = 2 if bidir else 1
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((L * dirs, B, H))
    c0 = rng.standard_normal((L * dirs, B, H)) if kind == "lstm" else None
    w = make_weights(kind, D, H, L, dirs, seed=L)
    y, h_n, c_n = call(kind, x, h0, c0, w, L, bidir, lengths=lengths)
    ry, rh, rc = ref_stack(kind, x, h0, c0, w, L, dirs, lengths)
    assert y.shape == (T, B, dirs * H) and h_n.shape == (L * dirs, B, H)
    np.testing.assert_allclose(y, ry, atol=1e-12)
    np.testing.assert_allclose(h_n, rh, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(c_n, rc, atol=1e-12)
    # The flat list in PyTorch's order gives the same result; so does batch_first.
    y2 = call(kind, x, h0, c0, list(w.values()), L, bidir, lengths=lengths)[0]
    np.testing.assert_array_equal(y2, y)
    yb = call(kind, x.transpose(1, 0, 2), h0, c0, w, L, bidir, lengths=lengths, batch_first=True)[0]
    np.testing.assert_array_equal(yb, y.transpose(1, 0, 2))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_stack_gradients_bidirectional_two_layers_with_lengths(kind, batch_first):
    rng = np.random.default_rng(3)
    T, B, D, H, L = 3, 2, 2, 2, 2
    lengths = [3, 2]
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D))
    h0 = rng.standard_normal((2 * L, B, H)) * 0.5
    c0 = rng.standard_normal((2 * L, B, H)) * 0.5 if kind == "lstm" else None
    w = make_weights(kind, D, H, L, 2, seed=4)
    y, h_n, c_n, cache = call(kind, x, h0, c0, w, L, True, lengths=lengths, batch_first=batch_first,
                              return_cache=True)
    wy, wh, wc = random_projection(y.shape, 1), random_projection(h_n.shape, 2), random_projection(h_n.shape, 3)
    dx, dh0, dc0, dw = call_backward(kind, wy, wh, wc if kind == "lstm" else None, cache)
    assert isinstance(dw, dict) and list(dw) == list(w)

    def loss():
        yy, hh, cc = call(kind, x, h0, c0, w, L, True, lengths=lengths, batch_first=batch_first)[:3]
        return np.sum(wy * yy) + np.sum(wh * hh) + (np.sum(wc * cc) if cc is not None else 0.0)

    check_grad(loss, x, dx)
    check_grad(loss, h0, dh0)
    if kind == "lstm":
        check_grad(loss, c0, dc0)
    for name in w:
        check_grad(loss, w[name], dw[name])


def test_stack_list_gradients_without_bias_and_states():
    rng = np.random.default_rng(5)
    T, B, D, H = 3, 2, 3, 2
    x = rng.standard_normal((T, B, D))
    w = list(make_weights("gru", D, H, 1, 2, bias=False, seed=6).values())
    y, h_n, cache = F.gru_stack(x, None, w, 1, True, return_cache=True)
    wy = random_projection(y.shape, 7)
    dx, dh0, dw = F.gru_stack_backward(wy, None, cache)
    assert dh0 is None and isinstance(dw, list) and len(dw) == 4

    def loss():
        return np.sum(wy * F.gru_stack(x, None, w, 1, True)[0])

    check_grad(loss, x, dx)
    for a, g in zip(w, dw):
        check_grad(loss, a, g)


def test_stack_bad_inputs_name_the_argument():
    rng = np.random.default_rng(8)
    T, B, D, H = 3, 2, 4, 3
    x = rng.standard_normal((T, B, D))
    w = make_weights("lstm", D, H, 2, 2)
    with pytest.raises(ValueError, match="'weights'"):
        F.lstm_stack(x, None, None, list(w.values())[:-1], 2, True)
    with pytest.raises(ValueError, match="'weights'"):
        F.lstm_stack(x, None, None, {k: v for k, v in w.items() if k != "bias_hh_l1"}, 2, True)
    bad = dict(w)
    bad["weight_ih_l1_reverse"] = np.zeros((4 * H, D))  # layer 1 must take 2H inputs
    with pytest.raises(ValueError, match="'weight_ih_l1_reverse'"):
        F.lstm_stack(x, None, None, bad, 2, True)
    with pytest.raises(ValueError, match="'h0'"):
        F.lstm_stack(x, np.zeros((2, B, H)), None, w, 2, True)
    with pytest.raises(ValueError, match="'num_layers'"):
        F.lstm_stack(x, None, None, w, 0, True)
    with pytest.raises(TypeError, match="'lengths'"):
        F.lstm_stack(x, None, None, w, 2, True, lengths=np.array([1.5, 2.0]))
    y, h, c, cache = F.lstm_stack(x, None, None, w, 2, True, return_cache=True)
    with pytest.raises(ValueError, match="'dy'"):
        F.lstm_stack_backward(y[:, :, :H], None, None, cache)
    with pytest.raises(TypeError, match="'cache'"):
        F.gru_stack_backward(None, None, object())


@pytest.mark.parametrize("kind", KINDS)
def test_pytorch_parity_when_installed(kind):
    torch = pytest.importorskip("torch")
    T, B, D, H, L = 5, 3, 4, 3, 2
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[kind]
    torch.manual_seed(0)
    mod = cls(D, H, num_layers=L, bidirectional=True).double()
    w = {k: v.detach().numpy().copy() for k, v in mod.named_parameters()}
    x = np.random.default_rng(0).standard_normal((T, B, D))
    ty, th = mod(torch.from_numpy(x))
    y, h_n, c_n = call(kind, x, None, None, w, L, True)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(h_n, (th[0] if kind == "lstm" else th).detach().numpy(), atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_stack_is_the_batch_of_one(kind):
    rng = np.random.default_rng(9)
    T, D, H, L = 4, 3, 2, 2
    x = rng.standard_normal((T, D))
    h0 = rng.standard_normal((2 * L, H))
    c0 = rng.standard_normal((2 * L, H)) if kind == "lstm" else None
    w = make_weights(kind, D, H, L, 2, seed=10)
    y, h_n, c_n, cache = call(kind, x, h0, c0, w, L, True, return_cache=True)
    yb, hb, cb = call(kind, x[:, None], h0[:, None], None if c0 is None else c0[:, None], w, L, True)[:3]
    assert y.shape == (T, 2 * H) and h_n.shape == (2 * L, H)
    np.testing.assert_array_equal(y, yb[:, 0])
    np.testing.assert_array_equal(h_n, hb[:, 0])
    wy, wh = random_projection(y.shape, 1), random_projection(h_n.shape, 2)
    dx, dh0, dc0, dw = call_backward(kind, wy, wh, None, cache)
    assert dx.shape == x.shape and dh0.shape == h0.shape

    def loss():
        yy, hh = call(kind, x, h0, c0, w, L, True)[:2]
        return np.sum(wy * yy) + np.sum(wh * hh)

    check_grad(loss, x, dx)
    check_grad(loss, h0, dh0)
    check_grad(loss, w["weight_hh_l1_reverse"], dw["weight_hh_l1_reverse"])
    with pytest.raises(ValueError, match="'lengths'"):
        call(kind, x, None, None, w, L, True, lengths=[2])
    with pytest.raises(ValueError, match="'h0'"):
        call(kind, x, h0[:, None], None, w, L, True)
