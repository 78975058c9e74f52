"""MultiheadAttention vs a NumPy reference written from the definition (projections, per-head
softmax(QK^T/sqrt(d)+mask)V, output projection), masks, PyTorch's parameter names and
shapes, float64 gradient checks through the modules (train and eval mode, dropout off), and
the Transformer layers / positional encoding."""

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


def _softmax(s):
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def mha_ref(m, q, k, v, attn_mask=None, key_padding_mask=None):
    """Batch-first NumPy reference: q (N, L, E), k (N, S, kdim), v (N, S, vdim)."""
    E, H = m.embed_dim, m.num_heads
    hd = E // H
    if m.in_proj_weight is not None:
        wq, wk, wv = np.split(m.in_proj_weight.numpy(), 3)
    else:
        wq, wk, wv = m.q_proj_weight.numpy(), m.k_proj_weight.numpy(), m.v_proj_weight.numpy()
    bq, bk, bv = np.split(m.in_proj_bias.numpy(), 3) if m.in_proj_bias is not None else (0, 0, 0)
    Q, K, V = q @ wq.T + bq, k @ wk.T + bk, v @ wv.T + bv
    N, L, _ = Q.shape
    S = K.shape[1]
    out = np.zeros((N, L, E))
    weights = np.zeros((N, H, L, S))
    for n in range(N):
        for h in range(H):
            sl = slice(h * hd, (h + 1) * hd)
            s = Q[n, :, sl] @ K[n, :, sl].T / math.sqrt(hd)
            if attn_mask is not None:
                am = attn_mask if attn_mask.ndim == 2 else attn_mask[n * H + h]
                s = s + (np.where(am, -np.inf, 0) if am.dtype == bool else am)
            if key_padding_mask is not None:
                s = s + np.where(key_padding_mask[n], -np.inf, 0)[None]
            p = _softmax(s)
            weights[n, h] = p
            out[n, :, sl] = p @ V[n, :, sl]
    out = out @ m.out_proj.weight.numpy().T + (m.out_proj.bias.numpy() if m.out_proj.bias is not None else 0)
    return out, weights


def test_mha_parameter_names_shapes_init():
    ox.manual_seed(0)
    m = nn.MultiheadAttention(8, 2)
    shapes = {n: p.shape for n, p in m.named_parameters()}
    assert shapes == {"in_proj_weight": (24, 8), "in_proj_bias": (24,), "out_proj.weight": (8, 8),
                      "out_proj.bias": (8,)}
    assert np.all(m.in_proj_bias.numpy() == 0) and np.all(m.out_proj.bias.numpy() == 0)
    bound = math.sqrt(6 / (8 + 24))  # xavier_uniform over the packed (3E, E) matrix
    assert np.abs(m.in_proj_weight.numpy()).max() <= bound
    m2 = nn.MultiheadAttention(8, 2, kdim=5, vdim=3, bias=False, add_bias_kv=True)
    shapes = {n: p.shape for n, p in m2.named_parameters()}
    assert shapes == {"q_proj_weight": (8, 8), "k_proj_weight": (8, 5), "v_proj_weight": (8, 3),
                      "out_proj.weight": (8, 8), "bias_k": (1, 1, 8), "bias_v": (1, 1, 8)}
    with pytest.raises(ValueError, match="embed_dim"):
        nn.MultiheadAttention(7, 2)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_matches_numpy_reference(batch_first):
    ox.manual_seed(1)
    m = nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    with ox.no_grad():
        m.in_proj_bias.numpy()[...] = np.random.default_rng(9).standard_normal(24) * 0.1
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 5, 8))
    kpm = np.array([[False, False, False, True, True], [False] * 5])
    am = np.triu(np.ones((3, 5), bool), 3)
    ref, w_ref = mha_ref(m, q, k, k, am, kpm)
    tq, tk = (_T(q), _T(k)) if batch_first else (_T(q.transpose(1, 0, 2)),
                                                              _T(k.transpose(1, 0, 2)))
    out, w = m(tq, tk, tk, key_padding_mask=kpm, attn_mask=am)
    o = out.numpy() if batch_first else out.numpy().transpose(1, 0, 2)
    np.testing.assert_allclose(o, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), w_ref.mean(1), rtol=1e-10, atol=1e-12)
    _, w_all = m(tq, tk, tk, key_padding_mask=kpm, attn_mask=am, average_attn_weights=False)
    np.testing.assert_allclose(w_all.numpy(), w_ref, rtol=1e-10, atol=1e-12)
    # float masks are added
    fm = np.random.default_rng(1).standard_normal((2 * 2, 3, 5))
    out2, _ = m(tq, tk, tk, attn_mask=fm, need_weights=False)
    o2 = out2.numpy() if batch_first else out2.numpy().transpose(1, 0, 2)
    np.testing.assert_allclose(o2, mha_ref(m, q, k, k, fm)[0], rtol=1e-10, atol=1e-12)


def test_mha_kdim_vdim_unbatched_and_causal():
    ox.manual_seed(2)
    m = nn.MultiheadAttention(6, 3, kdim=4, vdim=5, batch_first=True).double()
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 4, 4)), rng.standard_normal((2, 4, 5))
    out, _ = m(_T(q), _T(k), _T(v))
    np.testing.assert_allclose(out.numpy(), mha_ref(m, q, k, v)[0], rtol=1e-10, atol=1e-12)
    out_u, w_u = m(_T(q[0]), _T(k[0]), _T(v[0]))
    np.testing.assert_allclose(out_u.numpy(), out.numpy()[0], rtol=1e-12)
    assert w_u.shape == (3, 4)
    s = nn.MultiheadAttention(6, 2, batch_first=True).double()
    x = rng.standard_normal((2, 4, 6))
    causal, _ = s(_T(x), _T(x), _T(x), is_causal=True, need_weights=False)
    ref = mha_ref(s, x, x, x, np.triu(np.ones((4, 4), bool), 1))[0]
    np.testing.assert_allclose(causal.numpy(), ref, rtol=1e-10, atol=1e-12)


MHA_CASES = [
    ("self", lambda: nn.MultiheadAttention(4, 2), "self"),
    ("cross_kdim", lambda: nn.MultiheadAttention(4, 2, kdim=3, vdim=2, batch_first=True), "cross"),
    ("bias_kv_zero_attn", lambda: nn.MultiheadAttention(4, 1, add_bias_kv=True, add_zero_attn=True), "self"),
    ("dropout_in_eval", lambda: nn.MultiheadAttention(4, 2, dropout=0.3), "self_eval_only"),
]


@pytest.mark.parametrize("name,make,kind", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_mha_gradcheck(name, make, kind):
    ox.manual_seed(3)
    m = make().double()
    with ox.no_grad():
        for p in m.parameters():
            p.numpy()[...] += np.random.default_rng(4).standard_normal(p.shape) * 0.1
    if kind == "cross":
        q, k, v = _x(2, 3, 4), _x(2, 5, 3, seed=1), _x(2, 5, 2, seed=2)
        fn = lambda a, b, c: m(a, b, c, need_weights=False)[0]  # noqa: E731
        args = (q, k, v)
    else:
        x = _x(3, 2, 4)
        kpm = np.array([[False, False, True], [False, False, False]])
        fn = lambda a: m(a, a, a, key_padding_mask=kpm)[0]  # noqa: E731
        args = (x,)
    modes = (False,) if kind == "self_eval_only" else (True, False)
    for mode in modes:
        m.train(mode)
        assert ox.gradcheck(fn, args, params=list(m.named_parameters()))


def test_mha_attention_dropout_training_path_is_differentiable():
    m = nn.MultiheadAttention(4, 2, dropout=0.5, batch_first=True).double()
    x = _x(2, 3, 4)

    def f(a):
        ox.manual_seed(11)
        return m(a, a, a)[0]

    assert ox.gradcheck(f, (x,), params=list(m.named_parameters()))
    ox.manual_seed(0)
    y1 = m(x, x, x)[0].numpy()
    m.eval()
    y2 = m(x, x, x)[0].numpy()
    assert not np.allclose(y1, y2)


def test_sdpa_functional_and_bad_mask():
    q, k, v = _x(2, 3, 4), _x(2, 5, 4, seed=1), _x(2, 5, 2, seed=2)
    assert ox.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=False), (q, k, v))
    s = q.numpy() @ k.numpy().transpose(0, 2, 1) / 2
    ref = _softmax(s) @ v.numpy()
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v).numpy(), ref, rtol=1e-12)
    m = nn.MultiheadAttention(4, 2)
    with pytest.raises(ValueError, match="'attn_mask'"):
        m(ox.zeros((3, 2, 4)), ox.zeros((3, 2, 4)), ox.zeros((3, 2, 4)), attn_mask=np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="'key_padding_mask'"):
        m(ox.zeros((3, 2, 4)), ox.zeros((3, 2, 4)), ox.zeros((3, 2, 4)), key_padding_mask=np.zeros((3, 3), bool))


# ----------------------------------------------------------------------------- transformer


def test_encoder_layer_submodules_and_reference():
    ox.manual_seed(4)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True).double()
    names = {n.split(".")[0] for n, _ in layer.named_parameters()}
    assert names == {"self_attn", "linear1", "linear2", "norm1", "norm2"}
    x = np.random.default_rng(0).standard_normal((2, 3, 8))

    def ln(a, mod):
        mu, var = a.mean(-1, keepdims=True), a.var(-1, keepdims=True)
        return (a - mu) / np.sqrt(var + 1e-5) * mod.weight.numpy() + mod.bias.numpy()

    def lin(a, mod):
        return a @ mod.weight.numpy().T + mod.bias.numpy()

    h = ln(x + mha_ref(layer.self_attn, x, x, x)[0], layer.norm1)
    ref = ln(h + lin(np.maximum(lin(h, layer.linear1), 0), layer.linear2), layer.norm2)
    np.testing.assert_allclose(layer(_T(x)).numpy(), ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_transformer_layers_gradcheck(norm_first, activation):
    ox.manual_seed(5)
    enc = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.1, activation=activation, norm_first=norm_first).double()
    dec = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.1, activation=activation, norm_first=norm_first).double()
    src, tgt = _x(3, 2, 4), _x(2, 2, 4, seed=1)
    mask = nn.Transformer.generate_square_subsequent_mask(2, dtype=ox.float64)
    for m in (enc, dec):
        m.eval()
    assert ox.gradcheck(lambda s: enc(s, src_key_padding_mask=np.array([[0, 0, 1], [0, 0, 0]], bool)), (src,),
                        params=list(enc.named_parameters()))
    assert ox.gradcheck(lambda t, s: dec(t, s, tgt_mask=mask), (tgt, src), params=list(dec.named_parameters()))
    # train mode with dropout: a fixed seed makes the graph a fixed function
    enc.train()

    def f(s):
        ox.manual_seed(7)
        return enc(s)

    assert ox.gradcheck(f, (src,), params=list(enc.named_parameters()))


def test_transformer_stacks_and_full_model_shapes():
    ox.manual_seed(6)
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
    assert len(enc.layers) == 2 and enc.layers[0] is not enc.layers[1]
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight
    x = ox.randn(2, 5, 8)
    assert enc(x).shape == (2, 5, 8)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 2)
    assert dec(ox.randn(2, 3, 8), enc(x), tgt_mask=nn.Transformer.generate_square_subsequent_mask(3)).shape == (2, 3, 8)
    t = nn.Transformer(8, 2, 1, 1, 16, batch_first=True)
    y = t(ox.randn(2, 5, 8), ox.randn(2, 3, 8))
    assert y.shape == (2, 3, 8) and y.dtype == np.float32
    y.sum().backward()
    assert all(p.grad is not None for p in t.parameters())


def test_causal_decoder_does_not_see_the_future():
    ox.manual_seed(8)
    dec = nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, batch_first=True).double().eval()
    mem = _T(np.random.default_rng(0).standard_normal((1, 3, 4)))
    t = np.random.default_rng(1).standard_normal((1, 4, 4))
    mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=ox.float64)
    y1 = dec(_T(t), mem, tgt_mask=mask).numpy()
    t2 = t.copy()
    t2[0, 3] += 5.0
    y2 = dec(_T(t2), mem, tgt_mask=mask).numpy()
    np.testing.assert_allclose(y1[0, :3], y2[0, :3], rtol=1e-12)
    assert not np.allclose(y1[0, 3], y2[0, 3])
    y3 = dec(_T(t2), mem, tgt_is_causal=True).numpy()
    np.testing.assert_allclose(y3, y2, rtol=1e-12)


def test_positional_encoding():
    pe = nn.PositionalEncoding(6, dropout=0.0, max_len=10)
    table = pe.pe.numpy()
    pos, i = 3, 1
    assert table[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 6)), rel=1e-6)
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 6)), rel=1e-6)
    x = _x(4, 2, 6)
    y = pe(x)
    np.testing.assert_allclose(y.numpy(), x.numpy() + table[:4, None], rtol=1e-6)
    assert ox.gradcheck(pe, (x,))
    pe_bf = nn.PositionalEncoding(5, 0.0, 10, batch_first=True)  # odd d_model
    assert pe_bf(ox.zeros((2, 3, 5))).shape == (2, 3, 5)
    with pytest.raises(ValueError, match="max_len"):
        pe(ox.zeros((11, 1, 6)))
