"""The NumPy peer of the rnn benchmark group (cases_rnn.numpy_forward/backward) computes
what oxinet computes, with and without the input gradient."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet.ops as F
from oxinet.benchmarks import cases_rnn


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("need_dx", [True, False])
def test_numpy_peer_backward_matches_oxinet(kind, need_dx):
    rng = np.random.default_rng(0)
    T, B, D, H = 5, 3, 4, 6
    G = cases_rnn.GATES[kind]
    x = rng.standard_normal((T, B, D))
    w_ih, w_hh = rng.standard_normal((G * H, D)) * 0.4, rng.standard_normal((G * H, H)) * 0.4
    b_ih, b_hh = rng.standard_normal(G * H) * 0.2, rng.standard_normal(G * H) * 0.2
    dy = rng.standard_normal((T, B, H))
    y_np, saved = cases_rnn.numpy_forward(kind, x, w_ih, w_hh, b_ih, b_hh)
    g_np = cases_rnn.numpy_backward(kind, x, w_ih, w_hh, saved, dy, need_dx)
    if kind == "lstm":
        y, _, _, cache = F.lstm(x, None, None, w_ih, w_hh, b_ih, b_hh, return_cache=True)
        dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = F.lstm_backward(dy, None, None, cache, need_dx=need_dx)
    else:
        y, _, cache = F.gru(x, None, w_ih, w_hh, b_ih, b_hh, return_cache=True)
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = F.gru_backward(dy, None, cache, need_dx=need_dx)
    np.testing.assert_allclose(y, y_np, rtol=1e-10, atol=1e-12)
    if need_dx:
        np.testing.assert_allclose(dx, g_np[0], rtol=1e-10, atol=1e-12)
    else:
        assert dx is None and g_np[0] is None
    # numpy_backward returns (dx, dh0 without the dh_n path, dW_ih, dW_hh, db_ih, db_hh)
    for got, ref in zip((dw_ih, dw_hh, db_ih, db_hh), g_np[2:]):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
