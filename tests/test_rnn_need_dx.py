"""``need_dx=False`` on the recurrent backward functions: dx is None (the input-gradient
product is skipped) and every other gradient is bitwise the one of the full backward,
for single layers and stacks (the first layer's dx only; deeper layers still pass theirs
down), with lengths, batch_first and both float types."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet.ops as F
from test_rnn import KINDS, params, run
from test_rnn_stack import make_weights


def _single_backward(kind, dy, dh, dc, cache, **kw):
    if kind == "lstm":
        return F.lstm_backward(dy, dh, dc, cache, **kw)
    f = F.gru_backward if kind == "gru" else F.rnn_backward
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = f(dy, dh, cache, **kw)
    return dx, dh0, None, dw_ih, dw_hh, db_ih, db_hh


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
def test_single_layer_skips_dx_only(kind, dtype, batch_first):
    rng = np.random.default_rng(3)
    T, B, D, H = 6, 5, 4, 7
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype) if kind == "lstm" else None
    w = params(kind, D, H, dtype=dtype)
    lengths = np.array([6, 2, 5, 1, 6])
    y, h_n, c_n, cache = run(kind, x, h0, c0, w, batch_first=batch_first, lengths=lengths, return_cache=True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dh = rng.standard_normal(h_n.shape).astype(dtype)
    dc = rng.standard_normal(c_n.shape).astype(dtype) if kind == "lstm" else None
    full = _single_backward(kind, dy, dh, dc, cache)
    part = _single_backward(kind, dy, dh, dc, cache, need_dx=False)
    assert full[0] is not None and full[0].shape == x.shape
    assert part[0] is None
    for a, b in zip(full[1:], part[1:]):
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("L,bidirectional", [(1, False), (2, True), (3, False)])
def test_stack_skips_only_the_first_layers_dx(kind, L, bidirectional):
    rng = np.random.default_rng(5)
    T, B, D, H = 5, 4, 3, 6
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    w = {k: v.astype(np.float32) for k, v in make_weights(kind, D, H, L, dirs).items()}
    lengths = np.array([5, 3, 5, 1])
    stack = {"lstm": F.lstm_stack, "gru": F.gru_stack, "rnn_tanh": F.rnn_stack}[kind]
    back = {"lstm": F.lstm_stack_backward, "gru": F.gru_stack_backward, "rnn_tanh": F.rnn_stack_backward}[kind]
    args = (x, None, None) if kind == "lstm" else (x, None)
    out = stack(*args, w, num_layers=L, bidirectional=bidirectional, batch_first=True, lengths=lengths,
                return_cache=True)
    y, cache = out[0], out[-1]
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dh = rng.standard_normal(out[1].shape).astype(np.float32)
    bargs = (dy, dh, None) if kind == "lstm" else (dy, dh)
    full = back(*bargs, cache)
    part = back(*bargs, cache, need_dx=False)
    assert full[0].shape == x.shape and part[0] is None
    for name in w:
        np.testing.assert_array_equal(full[-1][name], part[-1][name], err_msg=name)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_module_skips_dx_only_for_inputs_without_grad(mode, monkeypatch):
    """nn.LSTM/GRU/RNN ask the kernels for dx exactly when the input needs a gradient,
    and the weight gradients do not depend on it."""
    import oxinet as ox
    from oxinet import nn

    asked = []
    name = f"{mode.lower()}_stack_backward"
    real = getattr(F, name)

    def spy(*args, need_dx=True):
        asked.append(need_dx)
        return real(*args, need_dx=need_dx)

    monkeypatch.setattr(F, name, spy)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    grads = []
    for needs in (False, True):
        ox.manual_seed(0)
        layer = getattr(nn, mode)(5, 6, num_layers=2)
        xt = ox.tensor(x, requires_grad=needs)
        out = layer(xt)[0]
        (out * out).sum().backward()
        grads.append([p.grad.numpy().copy() for p in layer.parameters()])
        assert (xt.grad is not None) == needs
    assert asked == [False, True]
    for g0, g1 in zip(*grads):
        np.testing.assert_array_equal(g0, g1)
