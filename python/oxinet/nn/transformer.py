"""Attention and Transformer modules (``torch.nn`` names, arguments and parameters):
:class:`MultiheadAttention` on the fused scaled-dot-product attention kernel (forward and
backward), :class:`TransformerEncoderLayer` / :class:`TransformerDecoderLayer`, their
stacks, :class:`Transformer`, and the sinusoidal :class:`PositionalEncoding`.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from oxinet.nn import _seq_fn as QF
from oxinet.nn import functional as F
from oxinet.nn import init
from oxinet.nn.containers import ModuleList
from oxinet.nn.layers import Dropout, LayerNorm, Linear
from oxinet.nn.module import Module
from oxinet.nn.parameter import Parameter
from oxinet.tensor import Tensor, _resolve_dtype, cat, get_default_dtype

__all__ = [
    "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerDecoder", "Transformer", "PositionalEncoding",
]


def _dtype(dtype):
    d = _resolve_dtype(dtype, op="layer")
    return get_default_dtype() if d is None else d


def _arr(x):
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _as_float_mask(m, dtype):
    """Boolean 'True = masked' (MultiheadAttention's convention) or additive float mask -> float."""
    m = _arr(m)
    if m.dtype == np.bool_:
        return np.where(m, -np.inf, 0.0).astype(dtype)
    return m.astype(dtype, copy=False)


class MultiheadAttention(Module):
    """Multi-head attention ``softmax(Q K^T / sqrt(d_head) + mask) V`` per head, heads
    concatenated and projected by ``out_proj``.

    Parameters as PyTorch: ``in_proj_weight`` (3E, E) packed q/k/v (or ``q_proj_weight``
    (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim) when kdim/vdim differ
    from E), ``in_proj_bias`` (3E,), ``out_proj`` (Linear E -> E), optional ``bias_k``,
    ``bias_v`` (1, 1, E). Initialisation: xavier_uniform for the input projections, zero
    biases, ``out_proj.weight`` Linear's default.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False): query (L, N, E) ((N, L, E) with
    batch_first, or unbatched (L, E)), key (S, N, kdim), value (S, N, vdim);
    key_padding_mask (N, S) and attn_mask (L, S) or (N*heads, L, S), boolean with True =
    masked, or float (added to the scores). Returns (attn_output, attn_weights) with the
    weights averaged over heads (N, L, S) or per head (N, heads, L, S), or None when
    ``need_weights=False``.

    Without attention dropout (eval mode or ``dropout=0``) the attention runs on the fused
    kernel, and the returned weights are for inspection only (no gradient flows through
    them). With dropout active in training, attention is computed on Tensor ops (dropout on
    the weights, as PyTorch). Query rows whose keys are all masked give 0 (PyTorch: NaN).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got {embed_dim}, "
                             f"{num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: 'embed_dim' ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        d = _dtype(dtype)
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * embed_dim, embed_dim), d))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(np.empty((embed_dim, embed_dim), d))
            self.k_proj_weight = Parameter(np.empty((embed_dim, self.kdim), d))
            self.v_proj_weight = Parameter(np.empty((embed_dim, self.vdim), d))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty((3 * embed_dim,), d))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=d)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, embed_dim), d))
            self.bias_v = Parameter(np.empty((1, 1, embed_dim), d))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _project(self, query, key, value):
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:
                qkv = F.linear(query, w, b)
                return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
            if key is value:
                q = F.linear(query, w[:E], bq)
                kv = F.linear(key, w[E:], None if b is None else b[E:])
                return q, kv[..., :E], kv[..., E:]
            return F.linear(query, w[:E], bq), F.linear(key, w[E:2 * E], bk), F.linear(value, w[2 * E:], bv)
        return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                F.linear(value, self.v_proj_weight, bv))

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        cls = "MultiheadAttention"
        q_in, k_in, v_in = (x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for x in (query, key, value))
        if key is query:
            k_in = q_in
        if value is key:
            v_in = k_in
        unbatched = q_in.ndim == 2
        if q_in.ndim not in (2, 3) or k_in.ndim != q_in.ndim or v_in.ndim != q_in.ndim:
            raise ValueError(f"{cls}: 'query', 'key', 'value' must all be 3-D (batched) or 2-D (unbatched), got "
                             f"shapes {tuple(q_in.shape)}, {tuple(k_in.shape)}, {tuple(v_in.shape)}")
        if q_in.shape[-1] != self.embed_dim:
            raise ValueError(f"{cls}: 'query' has shape {tuple(q_in.shape)} but embed_dim is {self.embed_dim}")
        if k_in.shape[-1] != self.kdim or v_in.shape[-1] != self.vdim:
            raise ValueError(f"{cls}: 'key'/'value' have shapes {tuple(k_in.shape)}/{tuple(v_in.shape)} but "
                             f"kdim={self.kdim}, vdim={self.vdim}")
        # work batch-major: (N, L, E)
        if unbatched:
            q_in, k_in, v_in = (x.unsqueeze(0) if x is not None else None for x in (q_in, k_in, v_in))
            if key_padding_mask is not None:
                key_padding_mask = _arr(key_padding_mask)[None]
        elif not self.batch_first:
            same_qk, same_kv = k_in is q_in, v_in is k_in
            q_in = q_in.transpose(0, 1)
            k_in = q_in if same_qk else k_in.transpose(0, 1)
            v_in = k_in if same_kv else v_in.transpose(0, 1)
        N, L, E = q_in.shape
        S = k_in.shape[1]
        if k_in.shape[0] != N or v_in.shape[:2] != (N, S):
            raise ValueError(f"{cls}: batch or sequence sizes of 'query' {tuple(q_in.shape)}, 'key' "
                             f"{tuple(k_in.shape)} and 'value' {tuple(v_in.shape)} (batch-major) disagree")
        H, hd = self.num_heads, self.head_dim
        q, k, v = self._project(q_in, k_in, v_in)
        dtype = q.dtype
        am = None if attn_mask is None else _arr(attn_mask)
        kpm = None if key_padding_mask is None else _arr(key_padding_mask)
        if am is None and is_causal:
            am = ~np.tril(np.ones((L, S), bool))
        if self.bias_k is not None:
            k = cat([k, self.bias_k.expand(N, 1, E)], 1)
            v = cat([v, self.bias_v.expand(N, 1, E)], 1)
            if am is not None:
                am = np.concatenate([am, np.zeros(am.shape[:-1] + (1,), am.dtype)], -1)
            if kpm is not None:
                kpm = np.concatenate([kpm, np.zeros((N, 1), kpm.dtype)], -1)
            S += 1
        q = q.reshape(N, L, H, hd).transpose(1, 2)
        k = k.reshape(N, S, H, hd).transpose(1, 2)
        v = v.reshape(N, S, H, hd).transpose(1, 2)
        if self.add_zero_attn:
            z = np.zeros((N, H, 1, hd), dtype)
            k = cat([k, z], 2)
            v = cat([v, z], 2)
            if am is not None:
                am = np.concatenate([am, np.zeros(am.shape[:-1] + (1,), am.dtype)], -1)
            if kpm is not None:
                kpm = np.concatenate([kpm, np.zeros((N, 1), kpm.dtype)], -1)
            S += 1
        mask = self._merge_masks(am, kpm, N, L, S, dtype)
        scale = 1.0 / math.sqrt(hd)
        if self.training and self.dropout > 0.0:
            out, w = QF._sdpa_composite(q, k, v, mask, False, scale, self.dropout, True)
        elif need_weights:
            out, w = QF._SDPAFn.apply(q, k, v, mask, False, scale, True)
        else:
            out, w = QF._SDPAFn.apply(q, k, v, mask, False, scale, False), None
        out = out.transpose(1, 2).reshape(N, L, E)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            w = w.mean(1)
        if unbatched:
            w = w.squeeze(0)
        return out, w

    def _merge_masks(self, am, kpm, N, L, S, dtype):
        """One mask for the kernel: boolean 'True = attend' when all given masks are
        boolean, else an additive float mask; shape broadcastable to (N, H, L, S)."""
        H = self.num_heads
        if am is not None:
            if am.ndim == 2:
                if am.shape != (L, S):
                    raise ValueError(f"MultiheadAttention: 'attn_mask' has shape {am.shape}, expected ({L}, {S})")
                am = am[None, None]
            elif am.ndim == 3:
                if am.shape != (N * H, L, S):
                    raise ValueError(f"MultiheadAttention: 'attn_mask' has shape {am.shape}, expected "
                                     f"({N * H}, {L}, {S})")
                am = am.reshape(N, H, L, S)
            else:
                raise ValueError(f"MultiheadAttention: 'attn_mask' must be 2-D or 3-D, got shape {am.shape}")
        if kpm is not None:
            if kpm.shape != (N, S):
                raise ValueError(f"MultiheadAttention: 'key_padding_mask' has shape {kpm.shape}, expected ({N}, {S})")
            kpm = kpm[:, None, None, :]
        masks = [m for m in (am, kpm) if m is not None]
        if not masks:
            return None
        if all(m.dtype == np.bool_ for m in masks):
            allowed = ~masks[0]
            for m in masks[1:]:
                allowed = allowed & ~m
            return allowed
        total = _as_float_mask(masks[0], dtype)
        for m in masks[1:]:
            total = total + _as_float_mask(m, dtype)
        return total

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


def _activation(act):
    if callable(act):
        return act
    if act == "relu":
        return F.relu
    if act == "gelu":
        return F.gelu
    raise ValueError(f"Transformer: 'activation' must be 'relu', 'gelu' or a callable, got {act!r}")


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block with residuals and LayerNorm (post-norm, or
    pre-norm with ``norm_first``). Submodules named as PyTorch: self_attn, linear1, dropout,
    linear2, norm1, norm2, dropout1, dropout2."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)
        self.batch_first = batch_first

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x


class TransformerDecoderLayer(Module):
    """Masked self-attention, cross-attention over ``memory``, feed-forward; submodules
    self_attn, multihead_attn, linear1, dropout, linear2, norm1-3, dropout1-3 (PyTorch)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)
        self.batch_first = batch_first

    def _sa_block(self, x, mask, kpm, is_causal):
        return self.dropout1(self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=kpm, need_weights=False,
                                            is_causal=is_causal)[0])

    def _mha_block(self, x, mem, mask, kpm, is_causal):
        return self.dropout2(self.multihead_attn(x, mem, mem, attn_mask=mask, key_padding_mask=kpm,
                                                 need_weights=False, is_causal=is_causal)[0])

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x


class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (in ``layers``), then ``norm`` if given."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(Module):
    """``num_layers`` deep copies of ``decoder_layer`` (in ``layers``), then ``norm`` if given."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                      bool(tgt_is_causal), memory_is_causal)
        return self.norm(x) if self.norm is not None else x


class Transformer(Module):
    """Encoder-decoder Transformer (Vaswani et al.) with PyTorch's arguments and submodules
    ``encoder`` and ``decoder`` (each ending in a LayerNorm)."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                            tgt_is_causal, memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) float mask: 0 on and below the diagonal, -inf above (hides the future)."""
        d = _dtype(dtype)
        return Tensor(np.triu(np.full((sz, sz), -np.inf, d), 1))


class PositionalEncoding(Module):
    """Adds the sinusoidal encoding of Vaswani et al., PE[pos, 2i] = sin(pos / 10000^(2i/d)),
    PE[pos, 2i+1] = cos(...), then dropout. Input (T, N, d_model), or (N, T, d_model) with
    ``batch_first``; the table is the buffer ``pe`` (max_len, d_model)."""

    def __init__(self, d_model, dropout=0.1, max_len=5000, batch_first=False, dtype=None):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.batch_first = batch_first
        pos = np.arange(max_len)[:, None]
        div = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = np.zeros((max_len, d_model))
        pe[:, 0::2] = np.sin(pos * div)
        pe[:, 1::2] = np.cos(pos * div)[:, : d_model // 2]
        self.register_buffer("pe", Tensor(pe.astype(_dtype(dtype))))

    def forward(self, x):
        T = x.shape[1] if self.batch_first else x.shape[0]
        if T > self.pe.shape[0]:
            raise ValueError(f"PositionalEncoding: sequence length {T} exceeds max_len {self.pe.shape[0]}")
        pe = self.pe._data[:T].astype(x.dtype, copy=False)
        pe = pe[None] if self.batch_first else pe[:, None]
        return self.dropout(x + pe)
