"""Cell backward from the forward's saved gates (``return_cache=True`` / ``cache=``)
against the recomputing backward, the course-formula reference of
test_rnn_cell_direct, and through the nn cells' autograd."""
import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from oxinet import nn
from test_rnn_cell_direct import G, KINDS, assert_all_close, call_bwd, make, ref_backward


def fwd_cache(kind, x, h, c, wi, wh, bi, bh):
    if kind == "lstm":
        hn, cn, cache = F.lstm_cell(x, h, c, wi, wh, bi, bh, return_cache=True)
        return (hn, cn), cache
    if kind == "gru":
        hn, cache = F.gru_cell(x, h, wi, wh, bi, bh, return_cache=True)
    else:
        hn, cache = F.rnn_cell(x, h, wi, wh, bi, bh, nonlinearity=kind[4:], return_cache=True)
    return (hn, None), cache


def bwd_cache(kind, cache, dh, dc, x, h, c, wi, wh, bi, bh):
    if kind == "lstm":
        return F.lstm_cell_backward(dh, dc, x, h, c, wi, wh, bi, bh, cache=cache)
    if kind == "gru":
        out = F.gru_cell_backward(dh, x, h, wi, wh, bi, bh, cache=cache)
    else:
        out = F.rnn_cell_backward(dh, x, h, wi, wh, bi, bh, nonlinearity=kind[4:], cache=cache)
    dx, dhp, dwi, dwh, dbi, dbh = out
    return dx, dhp, None, dwi, dwh, dbi, dbh


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("b,d,hsz", [(1, 3, 2), (5, 7, 3), (17, 9, 13)])
@pytest.mark.parametrize("h_none,c_none,bias", [(False, False, True), (True, True, False), (False, True, True)])
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-11, 1e-12), (np.float32, 2e-4, 2e-5)])
def test_cached_matches_recomputed_and_reference(kind, b, d, hsz, h_none, c_none, bias, dtype, rtol, atol):
    dh, dc, x, h, c, wi, wh, bi, bh = make(kind, b, d, hsz, dtype, h_none=h_none, c_none=c_none, bias=bias)
    out, cache = fwd_cache(kind, x, h, c, wi, wh, bi, bh)
    plain = (F.lstm_cell(x, h, c, wi, wh, bi, bh) if kind == "lstm"
             else (F.gru_cell(x, h, wi, wh, bi, bh) if kind == "gru"
                   else F.rnn_cell(x, h, wi, wh, bi, bh, nonlinearity=kind[4:])))
    np.testing.assert_array_equal(out[0], plain[0] if kind == "lstm" else plain)  # the cache changes nothing
    assert cache.gates.shape == (b, G[kind] * hsz) and cache.state.shape == (b, hsz)
    got = bwd_cache(kind, cache, dh, dc, x, h, c, wi, wh, bi, bh)
    want = call_bwd(kind, dh, dc, x, h, c, wi, wh, bi, bh)
    assert all(g is None or g.dtype == dtype for g in got)
    assert_all_close(got, want, rtol, atol)
    ref = ref_backward(kind, *[None if a is None else a.astype(np.float64) for a in (dh, dc, x, h, c, wi, wh, bi,
                                                                                      bh)])
    for k, (a, e) in enumerate(zip(got, ref)):
        if a is not None and e is not None and (k != 4 or h is not None):
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"output {k}")


@pytest.mark.parametrize("kind", KINDS)
def test_cached_unbatched_and_thread_count(kind):
    dh, dc, x, h, c, wi, wh, bi, bh = make(kind, 37, 21, 19, np.float32, seed=4)
    old = oxinet.get_num_threads()
    try:
        res = []
        for n in (1, 2):
            oxinet.set_num_threads(n)
            _, cache = fwd_cache(kind, x, h, c, wi, wh, bi, bh)
            res.append(bwd_cache(kind, cache, dh, dc, x, h, c, wi, wh, bi, bh))
    finally:
        oxinet.set_num_threads(old)
    for a, e in zip(*res):
        if e is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, e)
    one = lambda a: None if a is None else a[3]
    _, cache = fwd_cache(kind, x[3], h[3], one(c), wi, wh, bi, bh)
    got = bwd_cache(kind, cache, dh[3], one(dc), x[3], h[3], one(c), wi, wh, bi, bh)
    want = call_bwd(kind, dh[3], one(dc), x[3], h[3], one(c), wi, wh, bi, bh)
    assert got[0].shape == x[3].shape
    assert_all_close(got, want, 2e-4, 2e-5)


def test_cached_empty_batch():
    dh, dc, x, h, c, wi, wh, bi, bh = make("lstm", 3, 4, 2, np.float64)
    _, cache = fwd_cache("lstm", x[:0], h[:0], c[:0], wi, wh, bi, bh)
    dx, dhp, dcp, dwi, dwh, dbi, dbh = bwd_cache("lstm", cache, dh[:0], dc[:0], x[:0], h[:0], c[:0], wi, wh, bi, bh)
    assert dx.shape == (0, 4) and dhp.shape == (0, 2) and dcp.shape == (0, 2)
    np.testing.assert_array_equal(dwi, 0.0)


def test_bad_caches():
    dh, dc, x, h, c, wi, wh, bi, bh = make("lstm", 3, 4, 2, np.float64)
    _, cache = fwd_cache("lstm", x, h, c, wi, wh, bi, bh)
    with pytest.raises(TypeError, match="'cache'"):
        F.lstm_cell_backward(dh, dc, x, h, c, wi, wh, bi, bh, cache=(cache.gates, cache.state))
    with pytest.raises(ValueError, match="'cache'"):
        F.gru_cell_backward(dh, x, h, wi[:6], wh[:6], bi[:6], bh[:6], cache=cache)
    with pytest.raises(ValueError, match="'cache'"):  # computed in float32, cached in float64
        f32 = [a.astype(np.float32) for a in (dh, dc, x, h, c, wi, wh, bi, bh)]
        F.lstm_cell_backward(*f32, cache=cache)
    with pytest.raises(ValueError, match="'gates'"):  # the cache of another batch
        F.lstm_cell_backward(dh[:2], dc[:2], x[:2], h[:2], c[:2], wi, wh, bi, bh, cache=cache)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_nn_cells_backward_through_the_cache(mode):
    """Module cells keep the cache when recorded: their gradients equal the recomputing
    op's, two steps deep, and retain_graph lets a second backward reuse it."""
    oxinet.manual_seed(0)
    cell = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell, "RNN": nn.RNNCell}[mode](5, 4).double()
    rng = np.random.default_rng(0)
    x = oxinet.tensor(rng.standard_normal((3, 5)), dtype=np.float64, requires_grad=True)
    h0 = oxinet.tensor(rng.standard_normal((3, 4)), dtype=np.float64)
    proj = rng.standard_normal((3, 4))
    w = [p.numpy() for p in cell.parameters()]
    if mode == "LSTM":
        h1, c1 = cell(x, (h0, h0 * 0.5))
        h2, _ = cell(x * 2.0, (h1, c1))
    else:
        h2 = cell(x * 2.0, cell(x, h0))
    ctx = h2.grad_fn.inputs[0] if mode == "LSTM" else h2.grad_fn  # LSTM: output 0 of the cell node
    assert isinstance(ctx.saved[-1], F.CellCache)
    loss = (h2 * oxinet.tensor(proj, dtype=np.float64)).sum()
    loss.backward(retain_graph=True)
    got = [p.grad.numpy().copy() for p in cell.parameters()] + [x.grad.numpy().copy()]
    # the same two steps by hand with the recomputing ops
    xd, hd = x.numpy(), h0.numpy()
    if mode == "LSTM":
        cd = hd * 0.5
        a1, c1d = F.lstm_cell(xd, hd, cd, *w)
        g2 = F.lstm_cell_backward(proj, None, 2 * xd, a1, c1d, *w)
        g1 = F.lstm_cell_backward(g2[1], g2[2], xd, hd, cd, *w)
    else:
        kw = {} if mode == "GRU" else {"nonlinearity": "tanh"}
        fwd, bwd = (F.gru_cell, F.gru_cell_backward) if mode == "GRU" else (F.rnn_cell, F.rnn_cell_backward)
        a1 = fwd(xd, hd, *w, **kw)
        g2 = (lambda r: r[:2] + (None,) + r[2:])(bwd(proj, 2 * xd, a1, *w, **kw))
        g1 = (lambda r: r[:2] + (None,) + r[2:])(bwd(g2[1], xd, hd, *w, **kw))
    want = [g1[k] + g2[k] for k in range(3, 7)] + [g1[0] + 2 * g2[0]]
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-12)
    loss.backward()
    for p, a in zip(list(cell.parameters()) + [x], got):
        np.testing.assert_allclose(p.grad.numpy(), 2 * a, rtol=1e-11, atol=1e-12)
