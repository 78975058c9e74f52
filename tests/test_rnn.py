"""Recurrent ops (cells and fused sequences) against NumPy references written from the
course formulas (INVENTORY F47 RNN, F49 GRU, F50 LSTM) in PyTorch's gate layout, plus
float64 finite-difference gradient checks through whole sequences."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from helpers import check_grad, random_projection

KINDS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


# ----------------------------------------------------------------------------- references


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def ref_cell(kind, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step for a batch. LSTM (F50, I2DL form): i, f, g, o = gates of
    x W_ih^T + b_ih + h W_hh^T + b_hh; c' = f c + i g; h' = o tanh(c').
    GRU (F49 full form with PyTorch's reset placement): r, z from sigmoid, n = tanh(W_in x + b_in
    + r (W_hn h + b_hn)), h' = (1 - z) n + z h. RNN (F47): h' = g(W_ax x + W_aa h + b)."""
    H = w_hh.shape[1]
    gx = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0 if b_hh is None else b_hh)
    if kind == "lstm":
        z = gx + gh
        i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c2 = f * c + i * g
        return o * np.tanh(c2), c2
    if kind == "gru":
        r = sigmoid(gx[:, :H] + gh[:, :H])
        z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h, None
    pre = gx + gh
    return (np.tanh(pre) if kind == "rnn_tanh" else np.maximum(pre, 0)), None


def ref_seq(kind, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None):
    """Time-major loop; a sequence's state freezes after its length, outputs there are 0."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H)) if h0 is None else np.array(h0, dtype=np.float64)
    c = np.zeros((B, H)) if c0 is None else np.array(c0, dtype=np.float64)
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    ys = np.zeros((T, B, H))
    for t in range(T):
        hn, cn = ref_cell(kind, x[t], h, c, w_ih, w_hh, b_ih, b_hh)
        act = (t < lens)[:, None]
        h = np.where(act, hn, h)
        if cn is not None:
            c = np.where(act, cn, c)
        ys[t] = np.where(act, hn, 0.0)
    return ys, h, c


def params(kind, D, H, seed=0, bias=True, dtype=np.float64, scale=0.5):
    rng = np.random.default_rng(seed)
    G = GATES[kind]
    w_ih = (rng.standard_normal((G * H, D)) * scale).astype(dtype)
    w_hh = (rng.standard_normal((G * H, H)) * scale).astype(dtype)
    b_ih = (rng.standard_normal(G * H) * 0.3).astype(dtype) if bias else None
    b_hh = (rng.standard_normal(G * H) * 0.3).astype(dtype) if bias else None
    return w_ih, w_hh, b_ih, b_hh


def run(kind, x, h0, c0, w, **kw):
    """Call the op under test with the kind's own signature; returns (y, h_n, c_n[, cache])."""
    w_ih, w_hh, b_ih, b_hh = w
    if kind == "lstm":
        return F.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, **kw)
    if kind == "gru":
        out = F.gru(x, h0, w_ih, w_hh, b_ih, b_hh, **kw)
    else:
        out = F.rnn(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=kind[4:], **kw)
    return (out[0], out[1], None) + tuple(out[2:])


def run_backward(kind, dy, dh, dc, cache):
    if kind == "lstm":
        return F.lstm_backward(dy, dh, dc, cache)
    f = F.gru_backward if kind == "gru" else F.rnn_backward
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = f(dy, dh, cache)
    return dx, dh0, None, dw_ih, dw_hh, db_ih, db_hh


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T,B,D,H", [(1, 1, 1, 1), (7, 3, 5, 4), (4, 40, 6, 9), (3, 1, 4, 70)])
def test_sequence_matches_reference_float64(kind, T, B, D, H):
    rng = np.random.default_rng(T * 100 + B)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    c0 = rng.standard_normal((B, H)) * 0.5 if kind == "lstm" else None
    w = params(kind, D, H, seed=B)
    y, h_n, c_n = run(kind, x, h0, c0, w)
    ry, rh, rc = ref_seq(kind, x, h0, c0, *w)
    assert y.dtype == np.float64 and y.shape == (T, B, H)
    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n, rh, rtol=1e-12, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(c_n, rc, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_close_to_float64_reference(kind):
    rng = np.random.default_rng(1)
    T, B, D, H = 20, 33, 16, 24  # several batch chunks, GEMM and small-product paths
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    w = params(kind, D, H, seed=2, dtype=np.float32, scale=0.3)
    y, h_n, c_n = run(kind, x, None, None, w)
    assert y.dtype == np.float32 and h_n.dtype == np.float32
    ry, rh, _ = ref_seq(kind, x.astype(np.float64), None, None, *[a.astype(np.float64) for a in w])
    np.testing.assert_allclose(y, ry, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(h_n, rh, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_padding_and_batch_first(kind):
    rng = np.random.default_rng(3)
    T, B, D, H = 6, 5, 3, 4
    x = rng.standard_normal((T, B, D))
    lengths = np.array([6, 1, 3, 6, 2])
    w = params(kind, D, H, seed=4)
    h0 = rng.standard_normal((B, H))
    y, h_n, c_n = run(kind, x, h0, None, w, lengths=lengths)
    ry, rh, rc = ref_seq(kind, x, h0, None, *w, lengths=lengths)
    np.testing.assert_allclose(y, ry, atol=1e-12)
    np.testing.assert_allclose(h_n, rh, atol=1e-12)
    assert np.all(y[3:, 2] == 0) and np.all(y[1:, 1] == 0)
    # Padding content must not matter.
    x2 = x.copy()
    x2[1:, 1] = 1e3
    np.testing.assert_array_equal(run(kind, x2, h0, None, w, lengths=lengths)[1], h_n)
    # batch_first is the same computation on transposed arrays.
    yb, hb, _ = run(kind, x.transpose(1, 0, 2).copy(), h0, None, w, batch_first=True, lengths=lengths)
    assert yb.shape == (B, T, H)
    np.testing.assert_array_equal(yb, y.transpose(1, 0, 2))
    np.testing.assert_array_equal(hb, h_n)


def test_states_3d_dtype_promotion_noncontiguous_and_empty_batch():
    rng = np.random.default_rng(5)
    T, B, D, H = 4, 3, 5, 2
    w = params("lstm", D, H, seed=6, dtype=np.float32)
    x = rng.standard_normal((T, B, 2 * D))[:, :, ::2]  # non-contiguous float64
    h0 = rng.standard_normal((1, B, H)).astype(np.float32)
    y, h_n, c_n = F.lstm(x, h0, None, *w)
    assert y.dtype == np.float64 and h_n.shape == (1, B, H) and c_n.shape == (1, B, H)
    ry, rh, rc = ref_seq("lstm", x, h0[0], None, *[a.astype(np.float64) for a in w])
    np.testing.assert_allclose(y, ry, atol=1e-12)
    np.testing.assert_allclose(h_n[0], rh, atol=1e-12)
    # Fortran-ordered weights give the same result.
    wf = tuple(np.asfortranarray(a) if a.ndim == 2 else a for a in w)
    np.testing.assert_array_equal(F.lstm(x, h0, None, *wf)[0], y)
    ye, he, ce = F.lstm(np.zeros((T, 0, D), np.float32), None, None, *w)
    assert ye.shape == (T, 0, H) and he.shape == (0, H) and ye.dtype == np.float32


def test_nan_propagates_within_its_sequence():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 2, 3))
    x[2, 0, 1] = np.nan
    w = params("gru", 3, 4, seed=8)
    y, h_n = F.gru(x, None, *w)
    assert np.all(np.isfinite(y[:2])) and np.all(np.isnan(y[2:, 0])) and np.all(np.isfinite(y[:, 1]))


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(9)
    T, B, D, H = 8, 70, 12, 20
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    w = params("lstm", D, H, seed=10, dtype=np.float32)
    lengths = rng.integers(1, T + 1, B)
    n0 = oxinet.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            oxinet.set_num_threads(n)
            y, h, c, cache = F.lstm(x, None, None, *w, lengths=lengths, return_cache=True)
            out.append((y.copy(), F.lstm_backward(y, h, None, cache)))
    finally:
        oxinet.set_num_threads(n0)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1], out[1][1]):
        if a is not None:
            np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- gradients


def seq_grad_check(kind, T, B, D, H, lengths=None, batch_first=False, bias=True, states=True, seed=0):
    rng = np.random.default_rng(seed)
    xs = (B, T, D) if batch_first else (T, B, D)
    x = rng.standard_normal(xs)
    h0 = rng.standard_normal((B, H)) * 0.5 if states else None
    c0 = rng.standard_normal((B, H)) * 0.5 if states and kind == "lstm" else None
    w = list(params(kind, D, H, seed=seed + 1, bias=bias))
    y, h_n, c_n, cache = run(kind, x, h0, c0, w, batch_first=batch_first, lengths=lengths, return_cache=True)
    wy, wh = random_projection(y.shape, 1), random_projection(h_n.shape, 2)
    wc = random_projection(h_n.shape, 3) if kind == "lstm" else None
    dc = wc if kind == "lstm" else None
    grads = run_backward(kind, wy, wh, dc, cache)

    def loss():
        yy, hh, cc = run(kind, x, h0, c0, w, batch_first=batch_first, lengths=lengths)[:3]
        val = np.sum(wy * yy) + np.sum(wh * hh)
        return val + (np.sum(wc * cc) if cc is not None else 0.0)

    targets = [("x", x, grads[0]), ("h0", h0, grads[1]), ("c0", c0, grads[2]),
               ("w_ih", w[0], grads[3]), ("w_hh", w[1], grads[4]), ("b_ih", w[2], grads[5]),
               ("b_hh", w[3], grads[6])]
    for name, arr, g in targets:
        if arr is None:
            assert g is None, name
            continue
        check_grad(loss, arr, g, tol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lengths", [None, [3, 1, 2]])
@pytest.mark.parametrize("batch_first", [False, True])
def test_sequence_gradients(kind, lengths, batch_first):
    seq_grad_check(kind, 3, 3, 3, 2, lengths=lengths, batch_first=batch_first, seed=len(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_gradients_tiny_and_without_bias_or_states(kind):
    seq_grad_check(kind, 1, 1, 1, 1, seed=3)
    seq_grad_check(kind, 4, 2, 2, 3, bias=False, states=False, seed=4)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_with_missing_output_gradients(kind):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 2, 2))
    w = params(kind, 2, 3, seed=12)
    y, h_n, c_n, cache = run(kind, x, None, None, w, return_cache=True)
    g_none = run_backward(kind, None, None, None, cache)
    assert np.all(g_none[0] == 0) and np.all(g_none[3] == 0)
    # dy only on the last step equals dh_n (no lengths): same gradients.
    dy = np.zeros_like(y)
    dy[-1] = 1.0
    g1 = run_backward(kind, dy, None, None, cache)
    g2 = run_backward(kind, None, np.ones_like(h_n), None, cache)
    for a, b in zip(g1, g2):
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-14)


# ----------------------------------------------------------------------------- cells


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_reference_and_gradients(kind, batched):
    rng = np.random.default_rng(13)
    B, D, H = 3, 4, 3
    x = rng.standard_normal((B, D) if batched else (D,))
    h = rng.standard_normal((B, H) if batched else (H,))
    c = rng.standard_normal((B, H) if batched else (H,))
    w = params(kind, D, H, seed=14)
    x2, h2, c2 = np.atleast_2d(x), np.atleast_2d(h), np.atleast_2d(c)
    rh, rc = ref_cell(kind, x2, h2, c2, *w)
    wh = random_projection(h.shape, 5)
    wc = random_projection(h.shape, 6)
    if kind == "lstm":
        hn, cn = F.lstm_cell(x, h, c, *w)
        np.testing.assert_allclose(np.atleast_2d(cn), rc, atol=1e-12)
        grads = F.lstm_cell_backward(wh, wc, x, h, c, *w)

        def loss():
            a, b = F.lstm_cell(x, h, c, *w)
            return np.sum(wh * a) + np.sum(wc * b)

        targets = [x, h, c, *w]
    else:
        if kind == "gru":
            hn = F.gru_cell(x, h, *w)
            g = F.gru_cell_backward(wh, x, h, *w)

            def loss():
                return np.sum(wh * F.gru_cell(x, h, *w))
        else:
            nl = kind[4:]
            hn = F.rnn_cell(x, h, *w, nonlinearity=nl)
            g = F.rnn_cell_backward(wh, x, h, *w, nonlinearity=nl)

            def loss():
                return np.sum(wh * F.rnn_cell(x, h, *w, nonlinearity=nl))
        grads = g
        targets = [x, h, *w]
    assert hn.shape == h.shape
    np.testing.assert_allclose(np.atleast_2d(hn), rh, atol=1e-12)
    assert len(grads) == len(targets)
    for arr, gr in zip(targets, grads):
        check_grad(loss, arr, gr, tol=1e-7)


def test_cell_with_no_state_and_float32():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    w = params("lstm", 3, 4, seed=16, dtype=np.float32)
    h, c = F.lstm_cell(x, None, None, *w)
    rh, rc = ref_cell("lstm", x.astype(np.float64), np.zeros((2, 4)), np.zeros((2, 4)),
                      *[a.astype(np.float64) for a in w])
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, rh, rtol=1e-5, atol=1e-6)
    dx, dh, dc, *_ = F.lstm_cell_backward(np.ones_like(h), None, x, None, None, *w)
    assert dh is None and dc is None and dx.shape == x.shape


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(17)
    T, B, D, H = 3, 2, 4, 5
    x = rng.standard_normal((T, B, D))
    w_ih, w_hh, b_ih, b_hh = params("lstm", D, H)
    with pytest.raises(ValueError, match="'h0'"):
        F.lstm(x, np.zeros((B, H + 1)), None, w_ih, w_hh)
    with pytest.raises(ValueError, match="'c0'"):
        F.lstm(x, None, np.zeros((B + 1, H)), w_ih, w_hh)
    with pytest.raises(ValueError, match="'w_ih'"):
        F.lstm(x, None, None, w_ih[:, :-1], w_hh)
    with pytest.raises(ValueError, match="'w_hh'"):
        F.lstm(x, None, None, w_ih, w_hh[:-1])
    with pytest.raises(ValueError, match="'w_hh'"):
        F.gru(x, None, w_ih, w_hh)  # 4H rows are not 3H
    with pytest.raises(ValueError, match="'b_hh'"):
        F.lstm(x, None, None, w_ih, w_hh, b_ih, b_hh[:-1])
    with pytest.raises(ValueError, match="'x'"):
        F.lstm(x[0], None, None, w_ih, w_hh)
    with pytest.raises(ValueError, match="'x'"):
        F.lstm(x[:0], None, None, w_ih, w_hh)
    with pytest.raises(TypeError, match="'x'"):
        F.lstm(x.astype(np.int32), None, None, w_ih, w_hh)
    with pytest.raises(TypeError, match="'w_hh'"):
        F.lstm(x, None, None, w_ih, w_hh.astype(np.int64))
    with pytest.raises(ValueError, match="'lengths'"):
        F.lstm(x, None, None, w_ih, w_hh, lengths=[0, 2])
    with pytest.raises(ValueError, match="'lengths'"):
        F.lstm(x, None, None, w_ih, w_hh, lengths=[4, 2])
    with pytest.raises(ValueError, match="'lengths'"):
        F.lstm(x, None, None, w_ih, w_hh, lengths=[3])
    with pytest.raises(TypeError, match="'lengths'"):
        F.lstm(x, None, None, w_ih, w_hh, lengths=np.array([3.0, 2.0]))
    with pytest.raises(ValueError, match="'nonlinearity'"):
        F.rnn(x, None, w_ih[:H], w_hh[:H], nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="'c0'"):
        # The public gru has no c0; the shared layer refuses one.
        from oxinet.ops.rnn import _forward
        _forward("gru", "gru", x, None, np.zeros((B, H)), w_ih[:3 * H], w_hh[:3 * H], None, None, False, None, False)
    y, h, c, cache = F.lstm(x, None, None, w_ih, w_hh, return_cache=True)
    with pytest.raises(ValueError, match="'dy'"):
        F.lstm_backward(y[:, :, :-1], None, None, cache)
    with pytest.raises(ValueError, match="'dh_n'"):
        F.lstm_backward(None, np.zeros((B, H + 1)), None, cache)
    with pytest.raises(TypeError, match="'cache'"):
        F.lstm_backward(None, None, None, (y, h))
    with pytest.raises(ValueError, match="'cache'"):
        F.gru_backward(None, None, cache)
    with pytest.raises(ValueError, match="'h'"):
        F.lstm_cell(x[0], np.zeros(H), None, w_ih, w_hh)
    with pytest.raises(ValueError, match="'x'"):
        F.gru_cell(x, None, w_ih[:3 * H], w_hh[:3 * H])
    with pytest.raises(ValueError, match="'dh_next'"):
        F.gru_cell_backward(np.zeros((B, H + 1)), x[0], None, w_ih[:3 * H], w_hh[:3 * H])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_float32_backward_close_to_float64(kind):
    # B = 32 gives chunks of 16 rows; H = 160 makes the backward per-step product long
    # enough (k = G*H) to take the GEMM path rather than the packed kernel.
    rng = np.random.default_rng(19)
    T, B, D, H = 3, 32, 8, 160
    x = rng.standard_normal((T, B, D))
    w = params(kind, D, H, seed=20, scale=0.1)
    lengths = rng.integers(1, T + 1, B)
    dy = rng.standard_normal((T, B, H))
    res = []
    for dt in (np.float64, np.float32):
        out = run(kind, x.astype(dt), None, None, [a.astype(dt) for a in w], lengths=lengths, return_cache=True)
        res.append(run_backward(kind, dy.astype(dt), None, None, out[3]))
    for a64, a32 in zip(*res):
        if a64 is not None:
            assert a32.dtype == np.float32
            np.testing.assert_allclose(a32, a64, rtol=2e-4, atol=2e-4 * np.abs(a64).max())


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), T=st.integers(1, 6), B=st.integers(1, 40), D=st.integers(1, 5),
       H=st.integers(1, 20), with_lengths=st.booleans(), sort=st.booleans(), seed=st.integers(0, 2**16))
def test_random_shapes_and_lengths_match_reference(kind, T, B, D, H, with_lengths, sort, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    w = params(kind, D, H, seed=seed, scale=0.4)
    lengths = None
    if with_lengths:
        lengths = rng.integers(1, T + 1, B)
        if sort:
            lengths = np.sort(lengths)[::-1]
    y, h_n, c_n, cache = run(kind, x, h0, None, w, lengths=lengths, return_cache=True)
    ry, rh, rc = ref_seq(kind, x, h0, None, *w, lengths=lengths)
    np.testing.assert_allclose(y, ry, atol=1e-12)
    np.testing.assert_allclose(h_n, rh, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(c_n, rc, atol=1e-12)
    # Backward: one output-gradient direction against a central difference along it.
    dy = rng.standard_normal(y.shape)
    dx = run_backward(kind, dy, None, None, cache)[0]
    v = rng.standard_normal(x.shape)
    eps = 1e-6
    fp = np.sum(dy * run(kind, x + eps * v, h0, None, w, lengths=lengths)[0])
    fm = np.sum(dy * run(kind, x - eps * v, h0, None, w, lengths=lengths)[0])
    np.testing.assert_allclose(np.sum(dx * v), (fp - fm) / (2 * eps), rtol=1e-5, atol=1e-7)
