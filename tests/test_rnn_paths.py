"""The fast paths of the recurrent kernels against the NumPy references of test_rnn.py
(course formulas F47/F49/F50): single steps (cells and T=1 sequences take one GEMM per
weight over the whole batch), long sequences (packed per-step products, batch chunks),
and thread-count determinism of each."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from test_rnn import KINDS, params, ref_cell, ref_seq, run, run_backward


def _cell(kind, x, h, c, w):
    if kind == "lstm":
        return F.lstm_cell(x, h, c, *w)
    if kind == "gru":
        return F.gru_cell(x, h, *w), None
    return F.rnn_cell(x, h, *w, nonlinearity=kind[4:]), None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("B,D,H", [(1, 5, 17), (33, 7, 16), (64, 128, 70), (5, 130, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cells_at_kernel_edges_match_reference(kind, B, D, H, dtype):
    rng = np.random.default_rng(B * 100 + H)
    x = rng.standard_normal((B, D)).astype(dtype)
    h = (rng.standard_normal((B, H)) * 0.5).astype(dtype)
    c = (rng.standard_normal((B, H)) * 0.5).astype(dtype)
    w = params(kind, D, H, seed=H, dtype=dtype, scale=0.3)
    hn, cn = _cell(kind, x, h, c, w)
    f64 = [None if a is None else a.astype(np.float64) for a in w]
    rh, rc = ref_cell(kind, x.astype(np.float64), h.astype(np.float64), c.astype(np.float64), *f64)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    assert hn.dtype == dtype and hn.shape == (B, H)
    np.testing.assert_allclose(hn, rh, **tol)
    if kind == "lstm":
        np.testing.assert_allclose(cn, rc, **tol)
    # Without a state (zeros) and with transposed (non-contiguous) weights.
    wt = [np.asfortranarray(a) if a is not None and a.ndim == 2 else a for a in w]
    hz, _ = _cell(kind, x, None, None, wt)
    rz, _ = ref_cell(kind, x.astype(np.float64), np.zeros((B, H)), np.zeros((B, H)), *f64)
    np.testing.assert_allclose(hz, rz, **tol)


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_sequence_equals_cell_and_first_step(kind):
    rng = np.random.default_rng(3)
    T, B, D, H = 5, 37, 20, 33
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    h0 = (rng.standard_normal((B, H)) * 0.5).astype(np.float32)
    c0 = (rng.standard_normal((B, H)) * 0.5).astype(np.float32) if kind == "lstm" else None
    w = params(kind, D, H, seed=4, dtype=np.float32, scale=0.3)
    y1, h1, c1 = run(kind, x[:1], h0, c0, w)[:3]
    hc, cc = _cell(kind, x[0], h0, c0, w)
    np.testing.assert_array_equal(y1[0], hc)
    np.testing.assert_array_equal(h1, hc)
    yT = run(kind, x, h0, c0, w)[0]
    # The long path (packed products) and the single-step path agree to rounding.
    np.testing.assert_allclose(yT[0], hc, rtol=1e-5, atol=1e-6)
    ry, _, _ = ref_seq(kind, x.astype(np.float64), h0, c0, *[a.astype(np.float64) for a in w])
    np.testing.assert_allclose(yT, ry, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cell_backward_through_the_one_step_path(kind):
    rng = np.random.default_rng(5)
    B, D, H = 40, 9, 21
    x = rng.standard_normal((B, D))
    h = rng.standard_normal((B, H)) * 0.5
    c = rng.standard_normal((B, H)) * 0.5
    w = params(kind, D, H, seed=6, scale=0.3)
    dh = rng.standard_normal((B, H))
    # Reference: the same gradients through a T=1 sequence with the cache.
    y, h_n, c_n, cache = run(kind, x[None], h, c if kind == "lstm" else None, w, return_cache=True)
    ref = run_backward(kind, dh[None], None, None, cache)
    if kind == "lstm":
        got = F.lstm_cell_backward(dh, None, x, h, c, *w)
        pairs = zip(got, (ref[0][0], ref[1], ref[2], *ref[3:]))
    else:
        got = F.gru_cell_backward(dh, x, h, *w)
        pairs = zip(got, (ref[0][0], ref[1], *ref[3:]))
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T,B,H", [(1, 70, 40), (6, 33, 40), (4, 1, 130)])
def test_fast_paths_do_not_depend_on_thread_count(kind, T, B, H):
    rng = np.random.default_rng(T + B)
    D = 24
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    h0 = (rng.standard_normal((B, H)) * 0.5).astype(np.float32)
    w = params(kind, D, H, seed=8, dtype=np.float32, scale=0.3)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    n0 = oxinet.get_num_threads()
    out = []
    try:
        for n in (1, 2, 3):
            oxinet.set_num_threads(n)
            y, h_n, c_n, cache = run(kind, x, h0, None, w, return_cache=True)
            out.append([y.copy(), h_n.copy()] + [g for g in run_backward(kind, dy, None, None, cache)
                                                  if g is not None])
    finally:
        oxinet.set_num_threads(n0)
    for other in out[1:]:
        for a, b in zip(out[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T,B,D,H", [(7, 37, 19, 33), (5, 3, 200, 16), (4, 20, 1, 5)])
def test_float32_sequences_with_lengths_match_reference(kind, T, B, D, H):
    # float32 on AVX-512 computes x_t @ W_ih^T per chunk inside the time loop; rows past
    # their length must stay zero and the final states frozen.
    rng = np.random.default_rng(T * B + D)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    h0 = (rng.standard_normal((B, H)) * 0.5).astype(np.float32)
    c0 = (rng.standard_normal((B, H)) * 0.5).astype(np.float32) if kind == "lstm" else None
    w = params(kind, D, H, seed=T, dtype=np.float32, scale=0.3)
    lengths = rng.integers(1, T + 1, B)
    y, h_n, c_n = run(kind, x, h0, c0, w, lengths=lengths)[:3]
    f64 = [a.astype(np.float64) for a in w]
    ry, rh, rc = ref_seq(kind, x.astype(np.float64), h0, c0, *f64, lengths=lengths)
    np.testing.assert_allclose(y, ry, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(h_n, rh, rtol=1e-4, atol=2e-5)
    assert np.all(y[np.arange(T)[:, None] >= lengths[None, :]] == 0)
    if kind == "lstm":
        np.testing.assert_allclose(c_n, rc, rtol=1e-4, atol=2e-5)
