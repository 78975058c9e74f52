"""The direct cell backward (one kernel call recomputing the step) against the sequence
path with T = 1, a NumPy reference from the course formulas, finite differences, and
itself under 1 vs 2 threads."""
import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from helpers import check_grad, random_projection

KINDS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
G = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_backward(kind, dh, dc, x, h, c, wi, wh, bi, bh):
    """Course formulas, float64, written out gate by gate."""
    H = wh.shape[1]
    h = np.zeros((x.shape[0], H)) if h is None else h
    c = np.zeros((x.shape[0], H)) if c is None else c
    dh = np.zeros_like(h) if dh is None else dh
    dc = np.zeros_like(h) if dc is None else dc
    gi = x @ wi.T + (0 if bi is None else bi)
    gh = h @ wh.T + (0 if bh is None else bh)
    if kind == "lstm":
        a = gi + gh
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        cn = f * c + i * g
        tc = np.tanh(cn)
        dct = dc + dh * o * (1 - tc ** 2)
        da = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f), dct * i * (1 - g ** 2),
                             dh * tc * o * (1 - o)], axis=1)
        dgi = dgh = da
        dh_prev = da @ wh
        dc_prev = dct * f
    elif kind == "gru":
        r = sig(gi[:, :H] + gh[:, :H])
        z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        dan = dh * (1 - z) * (1 - n ** 2)
        dar = dan * gh[:, 2 * H:] * r * (1 - r)
        daz = dh * (h - n) * z * (1 - z)
        dgi = np.concatenate([dar, daz, dan], axis=1)
        dgh = np.concatenate([dar, daz, dan * r], axis=1)
        dh_prev = dgh @ wh + dh * z
        dc_prev = None
    else:
        a = gi + gh
        da = dh * ((a > 0).astype(float) if kind == "rnn_relu" else 1 - np.tanh(a) ** 2)
        dgi = dgh = da
        dh_prev = da @ wh
        dc_prev = None
    return dgi @ wi, dh_prev, dc_prev, dgi.T @ x, dgh.T @ h, dgi.sum(0), dgh.sum(0)


def make(kind, b, d, hsz, dtype, seed=0, h_none=False, c_none=False, bias=True):
    rng = np.random.default_rng(seed)
    g = G[kind]
    x = rng.standard_normal((b, d))
    h = None if h_none else rng.standard_normal((b, hsz)) * 0.5
    c = None if (c_none or kind != "lstm") else rng.standard_normal((b, hsz)) * 0.5
    wi = rng.standard_normal((g * hsz, d)) * 0.4
    wh = rng.standard_normal((g * hsz, hsz)) * 0.4
    bi = rng.standard_normal(g * hsz) * 0.2 if bias else None
    bh = rng.standard_normal(g * hsz) * 0.2 if bias else None
    dh = rng.standard_normal((b, hsz))
    dc = rng.standard_normal((b, hsz)) if kind == "lstm" else None
    cast = lambda a: None if a is None else a.astype(dtype)
    return [cast(a) for a in (dh, dc, x, h, c, wi, wh, bi, bh)]


def call_bwd(kind, dh, dc, x, h, c, wi, wh, bi, bh):
    if kind == "lstm":
        return F.lstm_cell_backward(dh, dc, x, h, c, wi, wh, bi, bh)
    if kind == "gru":
        out = F.gru_cell_backward(dh, x, h, wi, wh, bi, bh)
    else:
        out = F.rnn_cell_backward(dh, x, h, wi, wh, bi, bh, nonlinearity=kind[4:])
    dx, dhp, dwi, dwh, dbi, dbh = out
    return dx, dhp, None, dwi, dwh, dbi, dbh


def seq_bwd(kind, dh, dc, x, h, c, wi, wh, bi, bh):
    """The previous implementation: sequence forward with T = 1 and BPTT."""
    x3 = x[np.newaxis]
    if kind == "lstm":
        _, _, _, cache = F.lstm(x3, h, c, wi, wh, bi, bh, return_cache=True)
        return F.lstm_backward(None, dh, dc, cache)
    if kind == "gru":
        _, _, cache = F.gru(x3, h, wi, wh, bi, bh, return_cache=True)
        dx, dh0, dwi, dwh, dbi, dbh = F.gru_backward(None, dh, cache)
    else:
        _, _, cache = F.rnn(x3, h, wi, wh, bi, bh, nonlinearity=kind[4:], return_cache=True)
        dx, dh0, dwi, dwh, dbi, dbh = F.rnn_backward(None, dh, cache)
    return dx, dh0, None, dwi, dwh, dbi, dbh


def assert_all_close(got, want, rtol, atol):
    for k, (a, e) in enumerate(zip(got, want)):
        if e is None:
            assert a is None, k
            continue
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"output {k}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("b,d,hsz", [(1, 3, 2), (5, 7, 3), (17, 9, 13)])
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-11, 1e-12), (np.float32, 2e-4, 2e-5)])
def test_matches_reference_and_sequence_path(kind, b, d, hsz, dtype, rtol, atol):
    args = make(kind, b, d, hsz, dtype)
    got = call_bwd(kind, *args)
    assert all(g is None or g.dtype == dtype for g in got)
    ref = ref_backward(kind, *[None if a is None else a.astype(np.float64) for a in args])
    assert_all_close(got, ref, rtol, atol)
    seq = seq_bwd(kind, *args)
    seq = (seq[0][0],) + tuple(seq[1:])
    assert_all_close(got, seq, rtol, atol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("h_none,c_none,bias", [(True, True, True), (True, False, False), (False, True, True)])
def test_none_states_and_biases(kind, h_none, c_none, bias):
    args = make(kind, 4, 5, 3, np.float64, h_none=h_none, c_none=c_none, bias=bias)
    got = call_bwd(kind, *args)
    ref = ref_backward(kind, *args)
    if h_none:
        assert got[1] is None
        ref = (ref[0], None) + ref[2:]
        ref = ref[:4] + (got[4],) + ref[5:]
        np.testing.assert_array_equal(got[4], 0.0)
    if kind == "lstm" and c_none:
        assert got[2] is None
        ref = ref[:2] + (None,) + ref[3:]
    if not bias:
        assert got[5] is None and got[6] is None
        ref = ref[:5] + (None, None)
    assert_all_close(got, ref, 1e-11, 1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_unbatched(kind):
    args = make(kind, 1, 4, 3, np.float64)
    flat = [None if a is None else (a[0] if a.ndim == 2 and a.shape[0] == 1 else a) for a in args]
    got = call_bwd(kind, *flat)
    ref = call_bwd(kind, *args)
    for a, e in zip(got, ref):
        if e is None:
            assert a is None
        elif e.ndim == 2 and a.ndim == 1:
            np.testing.assert_array_equal(a, e[0])
        else:
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("kind", KINDS)
def test_finite_differences(kind):
    dh, dc, x, h, c, wi, wh, bi, bh = make(kind, 3, 4, 3, np.float64, seed=1)
    w_h = random_projection((3, 3), seed=2)
    w_c = random_projection((3, 3), seed=3)

    def loss(x_, h_, c_, wi_, wh_, bi_, bh_):
        if kind == "lstm":
            hn, cn = F.lstm_cell(x_, h_, c_, wi_, wh_, bi_, bh_)
            return float((w_h * hn).sum() + (w_c * cn).sum())
        if kind == "gru":
            return float((w_h * F.gru_cell(x_, h_, wi_, wh_, bi_, bh_)).sum())
        return float((w_h * F.rnn_cell(x_, h_, wi_, wh_, bi_, bh_, nonlinearity=kind[4:])).sum())

    grads = call_bwd(kind, w_h, w_c if kind == "lstm" else None, x, h, c, wi, wh, bi, bh)
    params = [x, h, c, wi, wh, bi, bh]
    for pi in range(7):
        p = params[pi]
        if p is None:
            continue

        ps = list(params)
        ps[pi] = p.copy()
        check_grad(lambda ps=ps: loss(*ps), ps[pi], grads[pi], tol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_thread_count_bitwise(kind):
    args = make(kind, 37, 21, 19, np.float32, seed=4)
    old = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        one = call_bwd(kind, *args)
        oxinet.set_num_threads(2)
        two = call_bwd(kind, *args)
    finally:
        oxinet.set_num_threads(old)
    for a, e in zip(one, two):
        if e is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, e)


def test_nan_propagates():
    dh, dc, x, h, c, wi, wh, bi, bh = make("lstm", 3, 4, 2, np.float64)
    x[1, 2] = np.nan
    dx, dhp, dcp, dwi, dwh, dbi, dbh = F.lstm_cell_backward(dh, dc, x, h, c, wi, wh, bi, bh)
    assert np.isnan(dx[1]).all() and np.isfinite(dx[0]).all()
    assert np.isnan(dwi).any()


@pytest.mark.parametrize("bad,match", [("dh_shape", "'dh_next'"), ("c_shape", "'c'"), ("w_ih", "'w_ih'")])
def test_bad_inputs(bad, match):
    dh, dc, x, h, c, wi, wh, bi, bh = make("lstm", 3, 4, 2, np.float64)
    if bad == "dh_shape":
        dh = dh[:, :1]
    elif bad == "c_shape":
        c = c[:2]
    else:
        wi = wi[:, :3]
    with pytest.raises(ValueError, match=match):
        F.lstm_cell_backward(dh, dc, x, h, c, wi, wh, bi, bh)


def test_dtype_errors_and_promotion():
    dh, dc, x, h, c, wi, wh, bi, bh = make("gru", 3, 4, 2, np.float32)
    with pytest.raises(TypeError):
        F.gru_cell_backward(dh, x.astype(np.int64), h, wi, wh, bi, bh)
    out = F.gru_cell_backward(dh, x, h.astype(np.float64), wi, wh, bi, bh)
    assert all(o.dtype == np.float64 for o in out)


def ref_forward(kind, x, h, c, wi, wh, bi, bh):
    H = wh.shape[1]
    h = np.zeros((x.shape[0], H)) if h is None else h
    c = np.zeros((x.shape[0], H)) if c is None else c
    gi = x @ wi.T + (0 if bi is None else bi)
    gh = h @ wh.T + (0 if bh is None else bh)
    if kind == "lstm":
        a = gi + gh
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        cn = f * c + i * g
        return o * np.tanh(cn), cn
    if kind == "gru":
        r = sig(gi[:, :H] + gh[:, :H])
        z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h, None
    a = gi + gh
    return (np.maximum(a, 0) if kind == "rnn_relu" else np.tanh(a)), None


def call_fwd(kind, x, h, c, wi, wh, bi, bh):
    if kind == "lstm":
        return F.lstm_cell(x, h, c, wi, wh, bi, bh)
    if kind == "gru":
        return F.gru_cell(x, h, wi, wh, bi, bh), None
    return F.rnn_cell(x, h, wi, wh, bi, bh, nonlinearity=kind[4:]), None


def seq_fwd(kind, x, h, c, wi, wh, bi, bh):
    x3 = x[np.newaxis]
    if kind == "lstm":
        _, hn, cn = F.lstm(x3, h, c, wi, wh, bi, bh)
        return hn, cn
    if kind == "gru":
        return F.gru(x3, h, wi, wh, bi, bh)[1], None
    return F.rnn(x3, h, wi, wh, bi, bh, nonlinearity=kind[4:])[1], None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("b,d,hsz", [(1, 3, 2), (5, 7, 3), (17, 9, 13)])
@pytest.mark.parametrize("h_none,c_none,bias", [(False, False, True), (True, True, False), (False, True, True)])
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-12, 1e-13), (np.float32, 1e-5, 1e-6)])
def test_forward_matches_reference_and_sequence_path(kind, b, d, hsz, h_none, c_none, bias, dtype, rtol, atol):
    _, _, x, h, c, wi, wh, bi, bh = make(kind, b, d, hsz, dtype, h_none=h_none, c_none=c_none, bias=bias)
    got = call_fwd(kind, x, h, c, wi, wh, bi, bh)
    assert got[0].dtype == dtype
    ref = ref_forward(kind, *[None if a is None else a.astype(np.float64) for a in (x, h, c, wi, wh, bi, bh)])
    assert_all_close(got, ref, rtol * 10, atol * 10)
    assert_all_close(got, seq_fwd(kind, x, h, c, wi, wh, bi, bh), rtol * 10, atol * 10)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_thread_count_bitwise_and_unbatched(kind):
    _, _, x, h, c, wi, wh, bi, bh = make(kind, 37, 21, 19, np.float32, seed=5)
    old = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        one = call_fwd(kind, x, h, c, wi, wh, bi, bh)
        oxinet.set_num_threads(2)
        two = call_fwd(kind, x, h, c, wi, wh, bi, bh)
    finally:
        oxinet.set_num_threads(old)
    for a, e in zip(one, two):
        if e is not None:
            np.testing.assert_array_equal(a, e)
    flat = call_fwd(kind, x[3], h[3], None if c is None else c[3], wi, wh, bi, bh)
    batched = call_fwd(kind, x[3:4], h[3:4], None if c is None else c[3:4], wi, wh, bi, bh)
    for a, e in zip(flat, batched):
        if e is not None:
            assert a.shape == e.shape[1:]
            np.testing.assert_allclose(a, e[0], rtol=1e-6, atol=1e-7)


def test_forward_empty_batch_and_bad_inputs():
    _, _, x, h, c, wi, wh, bi, bh = make("lstm", 3, 4, 2, np.float64)
    hn, cn = F.lstm_cell(x[:0], h[:0], c[:0], wi, wh, bi, bh)
    assert hn.shape == (0, 2) and cn.shape == (0, 2)
    with pytest.raises(ValueError, match="'c0?'"):  # the forward goes through the layer and says 'c0'
        F.lstm_cell(x, h, c[:2], wi, wh, bi, bh)
    with pytest.raises(ValueError, match="'b_ih'"):
        F.lstm_cell(x, h, c, wi, wh, bi[:3], bh)
