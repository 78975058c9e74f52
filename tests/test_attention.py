"""scaled_dot_product_attention: NumPy references (course F63/F65), tiled vs direct
paths, masks, causal, fully masked rows, float64 finite-difference gradients, errors."""

import numpy as np
import pytest

import oxinet
import oxinet.ops as F
from helpers import check_grad, random_projection


def reference(q, k, v, mask=None, causal=False, scale=None):
    """Naive softmax attention in float64: scores, mask, softmax (fully masked rows -> 0), @ v."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    L, S = s.shape[-2:]
    if mask is not None:
        m = np.asarray(mask)
        s = np.where(m, s, -np.inf) if m.dtype == bool else s + m
    if causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    mx = s.max(-1, keepdims=True)
    dead = ~np.isfinite(mx)
    e = np.exp(s - np.where(dead, 0, mx))
    e = np.where(dead, 0, e)
    z = e.sum(-1, keepdims=True)
    p = np.where(dead, 0, e / np.where(z == 0, 1, z))
    return p @ v, p


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_course_formula_f65_per_query_loop():
    # A(q, K, V) = sum_i exp(q . k_i) / sum_j exp(q . k_j) v_i, one query at a time (scale 1).
    q, k, v = rand(4, 3, seed=1), rand(6, 3, seed=2), rand(6, 2, seed=3)
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    for t in range(4):
        e = np.array([np.exp(q[t] @ k[i]) for i in range(6)])
        want = sum(e[i] / e.sum() * v[i] for i in range(6))
        np.testing.assert_allclose(out[t], want, rtol=1e-12)


def test_course_formula_f63_context_vector():
    # c<t> = sum_t' alpha<t,t'> a<t'>, alpha = softmax over t' of the energies e<t,t'>.
    energies = rand(3, 5, seed=4)  # (T_y, T_x)
    a = rand(5, 4, seed=5)  # encoder states
    # energies as q.k with q = energies rows and k = identity: scores = energies
    ctx, alpha = F.scaled_dot_product_attention(energies, np.eye(5), a, scale=1.0, return_weights=True)
    want_alpha = np.exp(energies) / np.exp(energies).sum(1, keepdims=True)
    np.testing.assert_allclose(alpha, want_alpha, rtol=1e-12)
    np.testing.assert_allclose(ctx, want_alpha @ a, rtol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7, 4, 3), (1, 2, 130, 600, 16, 8), (2, 1, 70, 300, 8, 8), (1, 1, 1, 1, 2, 2)])
@pytest.mark.parametrize("causal", [False, True])
def test_forward_matches_reference(dtype, tol, shape, causal):
    B, H, L, S, E, Ev = shape
    q, k, v = rand(B, H, L, E, seed=1, dtype=dtype), rand(B, H, S, E, seed=2, dtype=dtype), rand(B, H, S, Ev, seed=3, dtype=dtype)
    out, w = F.scaled_dot_product_attention(q, k, v, is_causal=causal, return_weights=True)
    ref, p = reference(q, k, v, causal=causal)
    assert out.dtype == dtype and out.shape == (B, H, L, Ev) and w.shape == (B, H, L, S)
    np.testing.assert_allclose(out, ref, atol=tol, rtol=tol)
    np.testing.assert_allclose(w, p, atol=tol, rtol=tol)


@pytest.mark.parametrize("mask_shape", [(70, 300), (2, 1, 1, 300), (2, 3, 70, 300), (1, 70, 1)])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_masks_broadcast(mask_shape, kind):
    q, k, v = rand(2, 3, 70, 8, seed=1), rand(2, 3, 300, 8, seed=2), rand(2, 3, 300, 6, seed=3)
    rng = np.random.default_rng(9)
    if kind == "bool":
        mask = rng.random(mask_shape) > 0.3
    else:
        mask = rng.standard_normal(mask_shape) - np.where(rng.random(mask_shape) > 0.8, np.inf, 0)
    out, w = F.scaled_dot_product_attention(q, k, v, mask, scale=0.3, return_weights=True)
    ref, p = reference(q, k, v, mask, scale=0.3)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(w, p, atol=1e-12)


def test_fully_masked_rows_give_zeros_and_no_gradient():
    q, k, v = rand(1, 2, 70, 4, seed=1), rand(1, 2, 300, 4, seed=2), rand(1, 2, 300, 3, seed=3)
    mask = np.ones((70, 300), bool)
    mask[5] = False
    mask[66] = False
    out, w, lse = F.scaled_dot_product_attention(q, k, v, mask, return_weights=True, return_lse=True)
    assert np.all(np.isfinite(out))
    assert np.all(out[..., [5, 66], :] == 0) and np.all(w[..., [5, 66], :] == 0)
    assert np.all(np.isneginf(lse[..., [5, 66]]))
    g = rand(*out.shape, seed=4)
    dq, dk, dv = F.scaled_dot_product_attention_backward(g, q, k, v, out, lse, mask)
    assert np.all(np.isfinite(dq)) and np.all(np.isfinite(dk)) and np.all(np.isfinite(dv))
    assert np.all(dq[..., [5, 66], :] == 0)
    # the dead rows' upstream gradient does not matter
    g2 = g.copy()
    g2[..., [5, 66], :] = 1e3
    _, dk2, dv2 = F.scaled_dot_product_attention_backward(g2, q, k, v, out, lse, mask)
    np.testing.assert_array_equal(dk, dk2)
    np.testing.assert_array_equal(dv, dv2)


def test_empty_key_sequence_gives_zeros():
    out = F.scaled_dot_product_attention(rand(2, 4, 3), rand(2, 0, 3), rand(2, 0, 5))
    assert out.shape == (2, 4, 5) and np.all(out == 0)
    out = F.scaled_dot_product_attention(rand(2, 0, 3, dtype=np.float32), rand(2, 6, 3), rand(2, 6, 5))
    assert out.shape == (2, 0, 5) and out.dtype == np.float64
    dq, dk, dv = F.scaled_dot_product_attention_backward(np.zeros((2, 0, 5)), rand(2, 0, 3), rand(2, 6, 3), rand(2, 6, 5))
    assert dq.shape == (2, 0, 3) and np.all(dk == 0) and np.all(dv == 0)


def test_huge_scores_are_stable():
    q = np.array([[100.0, 0.0], [-100.0, 0.0]])
    k = np.array([[100.0, 0.0], [0.0, 1.0], [-100.0, 0.0]])
    v = np.array([[1.0], [2.0], [3.0]])
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # scores of +/-1e4
    np.testing.assert_array_equal(out, [[1.0], [3.0]])


GRAD_CASES = [
    # (B, H, L, S, E, Ev, mask kind, causal, scale)
    (1, 2, 3, 4, 3, 2, None, False, None),
    (2, 1, 4, 4, 2, 3, None, True, 0.7),
    (1, 2, 3, 5, 2, 2, "bool", False, None),
    (1, 1, 4, 3, 3, 2, "float", False, 1.3),
    (1, 1, 6, 6, 2, 2, None, True, None),
]


@pytest.mark.parametrize("case", GRAD_CASES)
def test_backward_finite_differences(case):
    B, H, L, S, E, Ev, mkind, causal, scale = case
    q, k, v = rand(B, H, L, E, seed=1), rand(B, H, S, E, seed=2), rand(B, H, S, Ev, seed=3)
    mask = None
    rng = np.random.default_rng(7)
    if mkind == "bool":
        mask = rng.random((L, S)) > 0.3
        mask[0] = False  # one fully masked row
        mask[1, 0] = True
    elif mkind == "float":
        mask = rng.standard_normal((B, 1, L, S))
    P = random_projection((B, H, L, Ev), seed=5)

    def loss():
        return np.sum(P * F.scaled_dot_product_attention(q, k, v, mask, is_causal=causal, scale=scale))

    out, lse = F.scaled_dot_product_attention(q, k, v, mask, is_causal=causal, scale=scale, return_lse=True)
    dq, dk, dv = F.scaled_dot_product_attention_backward(P, q, k, v, out, lse, mask, is_causal=causal, scale=scale)
    check_grad(loss, q, dq)
    check_grad(loss, k, dk)
    check_grad(loss, v, dv)


def test_backward_tiled_with_chunks_matches_finite_differences():
    # S > 512 (several key tiles in both passes, several chunks per head) and L > 128
    # (several query tiles).
    L, S = 140, 530
    q, k, v = rand(1, 1, L, 2, seed=1), rand(1, 1, S, 2, seed=2), rand(1, 1, S, 1, seed=3)
    P = random_projection((1, 1, L, 1), seed=4)
    for causal in (False, True):
        def loss():
            return np.sum(P * F.scaled_dot_product_attention(q, k, v, is_causal=causal))

        dq, dk, dv = F.scaled_dot_product_attention_backward(P, q, k, v, is_causal=causal)
        check_grad(loss, q, dq)
        sel = np.s_[:, :, 120:135, :]  # spot-check a window of keys (around the causal edge)
        num = np.zeros_like(k)
        for idx in np.ndindex(k[sel].shape):
            full = (idx[0], idx[1], 120 + idx[2], idx[3])
            old = k[full]
            k[full] = old + 1e-6
            fp = loss()
            k[full] = old - 1e-6
            fm = loss()
            k[full] = old
            num[full] = (fp - fm) / 2e-6
        np.testing.assert_allclose(dk[sel], num[sel], atol=1e-8)
        check_grad(loss, v, dv)


def test_broadcast_batch_gradients_are_summed():
    q = rand(2, 3, 4, 2, seed=1)
    k = rand(1, 3, 5, 2, seed=2)  # broadcast over batch
    v = rand(5, 2, seed=3)  # broadcast over batch and heads
    P = random_projection((2, 3, 4, 2), seed=4)

    def loss():
        return np.sum(P * F.scaled_dot_product_attention(q, k, v))

    dq, dk, dv = F.scaled_dot_product_attention_backward(P, q, k, v)
    assert dk.shape == k.shape and dv.shape == v.shape
    check_grad(loss, k, dk)
    check_grad(loss, v, dv)


def test_float32_backward_close_to_float64():
    q, k, v = rand(2, 2, 100, 16, seed=1), rand(2, 2, 300, 16, seed=2), rand(2, 2, 300, 8, seed=3)
    g = rand(2, 2, 100, 8, seed=4)
    d64 = F.scaled_dot_product_attention_backward(g, q, k, v, is_causal=True)
    d32 = F.scaled_dot_product_attention_backward(*(a.astype(np.float32) for a in (g, q, k, v)), is_causal=True)
    for a, b in zip(d64, d32):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, atol=2e-4 * np.abs(a).max())


def test_results_do_not_depend_on_thread_count():
    q, k, v = (rand(1, 2, 150, 16, seed=s, dtype=np.float32) for s in (1, 2, 3))
    g = rand(1, 2, 150, 16, seed=4, dtype=np.float32)
    before = oxinet.get_num_threads()
    try:
        res = []
        for n in (1, 2, 3):
            oxinet.set_num_threads(n)
            res.append((F.scaled_dot_product_attention(q, k, v),) + F.scaled_dot_product_attention_backward(g, q, k, v))
    finally:
        oxinet.set_num_threads(before)
    for r in res[1:]:
        for a, b in zip(res[0], r):
            np.testing.assert_array_equal(a, b)


def test_noncontiguous_and_mixed_dtypes():
    q = rand(2, 8, 3, seed=1).transpose(1, 0, 2)[:, :, :]  # (8, 2, 3) non-contiguous
    k = rand(8, 5, 3, seed=2).astype(np.float32)
    v = rand(8, 5, 4, seed=3)
    out = F.scaled_dot_product_attention(q, k, v)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, reference(q, k, v)[0], atol=1e-6)


def test_bad_inputs_name_the_argument():
    q, k, v = rand(2, 4, 3), rand(2, 5, 3), rand(2, 5, 6)
    with pytest.raises(ValueError, match="'attn_mask'"):
        F.scaled_dot_product_attention(q, k, v, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="'attn_mask'"):
        F.scaled_dot_product_attention(q, k, v, np.ones((4, 5), bool), is_causal=True)
    with pytest.raises(TypeError, match="'attn_mask'"):
        F.scaled_dot_product_attention(q, k, v, np.ones((4, 5), np.int32))
    with pytest.raises(ValueError, match="'key'"):
        F.scaled_dot_product_attention(q, rand(2, 5, 2), v)
    with pytest.raises(ValueError, match="'value'"):
        F.scaled_dot_product_attention(q, k, rand(2, 6, 6))
    with pytest.raises(TypeError, match="'query'"):
        F.scaled_dot_product_attention(q.astype(np.int64), k, v)
    with pytest.raises(ValueError, match="'query'"):
        F.scaled_dot_product_attention(np.ones(3), k, v)
    with pytest.raises(ValueError, match="batch"):
        F.scaled_dot_product_attention(rand(3, 4, 3), k, v)
    with pytest.raises(ValueError, match="'grad_out'"):
        F.scaled_dot_product_attention_backward(rand(2, 4, 5), q, k, v)


# --- float32 fast paths (AVX-512 online softmax, flat head x query-tile tasks, output
# tile as accumulator): many heads with one tile each, several key tiles with rescaling,
# NaN handled exactly as the float64 (portable) path handles it, 1 vs 2 threads.

@pytest.mark.parametrize("shape", [(4, 8, 128, 128, 32), (2, 3, 129, 513, 16), (1, 2, 257, 1030, 8), (3, 1, 5, 17, 64)])
def test_float32_fast_paths_match_reference_and_threads(shape):
    B, H, L, S, E = shape
    q, k, v = rand(B, H, L, E, seed=7, dtype=np.float32), rand(B, H, S, E, seed=8, dtype=np.float32), rand(B, H, S, E, seed=9, dtype=np.float32)
    g = rand(B, H, L, E, seed=10, dtype=np.float32)
    before = oxinet.get_num_threads()
    try:
        res = []
        for n in (1, 2):
            oxinet.set_num_threads(n)
            out, lse = F.scaled_dot_product_attention(q, k, v, return_lse=True)
            res.append((out, lse) + F.scaled_dot_product_attention_backward(g, q, k, v, out, lse))
    finally:
        oxinet.set_num_threads(before)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
    ref, _ = reference(q, k, v)
    np.testing.assert_allclose(res[0][0], ref, atol=3e-5, rtol=3e-5)
    d64 = F.scaled_dot_product_attention_backward(*(a.astype(np.float64) for a in (g, q, k, v)))
    for a, b in zip(d64, res[0][2:]):
        np.testing.assert_allclose(b, a, atol=3e-4 * np.abs(a).max())


def test_float32_nan_pattern_matches_float64_path():
    q, k, v = rand(2, 40, 8, seed=1), rand(2, 600, 8, seed=2), rand(2, 600, 4, seed=3)
    q[0, 5] = np.nan      # a whole score row NaN
    k[1, 550] = np.nan    # one key column NaN, in the second key tile
    v[0, 3, 1] = np.nan   # NaN only in the values
    o64 = F.scaled_dot_product_attention(q, k, v)
    o32 = F.scaled_dot_product_attention(*(a.astype(np.float32) for a in (q, k, v)))
    assert np.array_equal(np.isnan(o64), np.isnan(o32))
    assert np.array_equal(o64 == 0, o32 == 0)
    ok = np.isfinite(o64)
    np.testing.assert_allclose(o32[ok], o64[ok], atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("S", [6, 600])
def test_nan_scores_propagate_like_numpy(dtype, S):
    q, k, v = rand(2, 40, 8, seed=1), rand(2, S, 8, seed=2), rand(2, S, 4, seed=3)
    q[0, 5] = np.nan       # a whole score row NaN
    q[1, 7, 2] = np.nan    # another whole row, through one feature
    k[1, S - 2] = np.nan   # one key column NaN: every row of that head
    v[0, 3, 1] = np.nan    # NaN only in the values: one output column of that head
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(8)
    with np.errstate(invalid="ignore"):
        e = np.exp(s - s.max(-1, keepdims=True))
        expected = np.isnan((e / e.sum(-1, keepdims=True)) @ v)
    out, lse = F.scaled_dot_product_attention(*(a.astype(dtype) for a in (q, k, v)), return_lse=True)
    np.testing.assert_array_equal(np.isnan(out), expected)
    assert np.isnan(lse[0, 5]) and np.isnan(lse[1]).all() and np.isfinite(lse[0, :5]).all()
    dq, dk, dv = F.scaled_dot_product_attention_backward(np.ones_like(out), *(a.astype(dtype) for a in (q, k, v)), out, lse)
    assert np.isnan(dq[0, 5]).all() and np.isnan(dk[1]).all()
