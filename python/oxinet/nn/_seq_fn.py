"""``nn.functional`` entries over the sequence kernels of :mod:`oxinet.ops`: embedding,
recurrent layers (fused sequences and cells), scaled dot-product attention, and the CTC
loss (forward-backward in NumPy over log-probabilities).

Kernel-backed entries are :class:`oxinet.autograd.Function` subclasses whose ``backward``
calls the op's ``*_backward``. Star-imported into :mod:`oxinet.nn.functional`.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet import ops
from oxinet.autograd.function import Function
from oxinet.grad_mode import state as _GM
from oxinet.tensor import Tensor, _plain

__all__ = [
    "embedding", "rnn_stack", "rnn_cell", "gru_cell", "lstm_cell", "scaled_dot_product_attention",
    "ctc_loss",
]


def _t(x):
    if isinstance(x, Tensor) or x is None:
        return x
    return _plain(np.asarray(x))


def _arr(x):
    return x._data if isinstance(x, Tensor) else np.asarray(x)


# ----------------------------------------------------------------------------- embedding


class _EmbeddingFn(Function):
    @staticmethod
    def forward(ctx, idx, w, padding_idx, scale_grad_by_freq):
        ctx.idx, ctx.num, ctx.pad, ctx.freq = idx, w.shape[0], padding_idx, scale_grad_by_freq
        return ops.embedding(idx, w, padding_idx)

    @staticmethod
    def backward(ctx, g):
        if ctx.freq:
            flat = ctx.idx.reshape(-1)
            counts = np.bincount(flat, minlength=ctx.num)[flat].astype(g.dtype)
            g = g / counts.reshape(ctx.idx.shape + (1,))
        return None, ops.embedding_backward(g, ctx.idx, ctx.num, ctx.pad), None, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of ``weight`` (num_embeddings, embedding_dim) picked by the integer ``input``
    (any shape); returns input.shape + (embedding_dim,). ``padding_idx``'s row gets no
    gradient. ``max_norm`` renormalises the looked-up rows of ``weight`` in place (norm
    ``norm_type``) before the lookup, as PyTorch does; ``scale_grad_by_freq`` divides each
    row's gradient by its count in the batch. ``sparse`` is accepted and ignored (dense
    gradients)."""
    idx = _arr(input)
    w = _t(weight)
    if max_norm is not None:
        wd = w._data
        rows = np.unique(idx.reshape(-1))
        if rows.size and (rows.min() < 0 or rows.max() >= wd.shape[0]):
            raise ValueError(f"embedding: 'input' holds an index out of range for {wd.shape[0]} embeddings")
        norms = np.linalg.norm(wd[rows], ord=norm_type, axis=1)
        big = norms > max_norm
        wd[rows[big]] *= (max_norm / (norms[big] + 1e-7))[:, None].astype(wd.dtype)
    return _EmbeddingFn.apply(idx, w, padding_idx, bool(scale_grad_by_freq))


# ----------------------------------------------------------------------------- recurrent


class _RNNStackFn(Function):
    """One call of ops.{lstm,gru,rnn}_stack: all layers and directions fused per layer."""

    @staticmethod
    def forward(ctx, x, h0, c0, mode, num_layers, bidirectional, batch_first, lengths, nonlinearity, *weights):
        train = any(ctx.needs_input_grad)
        ctx.mode, ctx.nw = mode, len(weights)
        if mode == "LSTM":
            res = ops.lstm_stack(x, h0, c0, list(weights), num_layers, bidirectional, batch_first, lengths,
                                 return_cache=train)
        elif mode == "GRU":
            res = ops.gru_stack(x, h0, list(weights), num_layers, bidirectional, batch_first, lengths,
                                return_cache=train)
        else:
            res = ops.rnn_stack(x, h0, list(weights), num_layers, bidirectional, nonlinearity, batch_first,
                                lengths, return_cache=train)
        if train:
            ctx.cache = res[-1]
            res = res[:-1]
        return tuple(res)

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n=None):
        # Inputs that need no gradient (data fed to a first layer) skip the dx product.
        need_dx = ctx.needs_input_grad[0]
        if ctx.mode == "LSTM":
            dx, dh0, dc0, dw = ops.lstm_stack_backward(dy, dh_n, dc_n, ctx.cache, need_dx=need_dx)
        elif ctx.mode == "GRU":
            dx, dh0, dw = ops.gru_stack_backward(dy, dh_n, ctx.cache, need_dx=need_dx)
            dc0 = None
        else:
            dx, dh0, dw = ops.rnn_stack_backward(dy, dh_n, ctx.cache, need_dx=need_dx)
            dc0 = None
        ctx.cache = None
        return (dx, dh0, dc0) + (None,) * 6 + tuple(dw)


def rnn_stack(mode, input, h0, c0, weights, num_layers=1, bidirectional=False, batch_first=False, lengths=None,
              nonlinearity="tanh"):
    """A stacked (bi)directional ``mode`` in ('LSTM', 'GRU', 'RNN') over a whole sequence on
    the fused kernels. weights: PyTorch's flat parameter list. Returns (output, h_n) or
    (output, h_n, c_n) for LSTM. No dropout between layers (the modules add it)."""
    lens = None if lengths is None else _arr(lengths)
    return _RNNStackFn.apply(_t(input), _t(h0), _t(c0), mode, num_layers, bidirectional, batch_first, lens,
                             nonlinearity, *[_t(w) for w in weights])


class _CellFn(Function):
    """One cell step; when recorded, the forward keeps the step's gates (ops' CellCache)
    so that the backward does not recompute the two input products."""

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, b_ih, b_hh, mode, nonlinearity):
        ctx.mode, ctx.nl = mode, nonlinearity
        train = any(ctx.needs_input_grad)
        if mode == "LSTM":
            res = ops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, return_cache=train)
        elif mode == "GRU":
            res = ops.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, return_cache=train)
        else:
            res = ops.rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity, return_cache=train)
        cache = None
        if train:
            res, cache = (res[:-1] if mode == "LSTM" else res[0]), res[-1]
        ctx.save_for_backward(x, h, c, w_ih, w_hh, b_ih, b_hh, cache)
        return res

    @staticmethod
    def backward(ctx, dh, dc=None):
        x, h, c, w_ih, w_hh, b_ih, b_hh, cache = ctx.saved_tensors
        if ctx.mode == "LSTM":
            dx, dh0, dc0, dwi, dwh, dbi, dbh = ops.lstm_cell_backward(dh, dc, x, h, c, w_ih, w_hh, b_ih, b_hh,
                                                                      cache=cache)
        elif ctx.mode == "GRU":
            dx, dh0, dwi, dwh, dbi, dbh = ops.gru_cell_backward(dh, x, h, w_ih, w_hh, b_ih, b_hh, cache=cache)
            dc0 = None
        else:
            dx, dh0, dwi, dwh, dbi, dbh = ops.rnn_cell_backward(dh, x, h, w_ih, w_hh, b_ih, b_hh, ctx.nl,
                                                                cache=cache)
            dc0 = None
        return dx, dh0, dc0, dwi, dwh, dbi, dbh, None, None


def rnn_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One Elman step h' = act(W_ih x + b_ih + W_hh h + b_hh); hx None means zeros."""
    return _CellFn.apply(_t(input), _t(hx), None, _t(w_ih), _t(w_hh), _t(b_ih), _t(b_hh), "RNN", nonlinearity)


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step (gates r, z, n); returns h'."""
    return _CellFn.apply(_t(input), _t(hx), None, _t(w_ih), _t(w_hh), _t(b_ih), _t(b_hh), "GRU", "tanh")


def lstm_cell(input, hx, cx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step (gates i, f, g, o); returns (h', c')."""
    return _CellFn.apply(_t(input), _t(hx), _t(cx), _t(w_ih), _t(w_hh), _t(b_ih), _t(b_hh), "LSTM", "tanh")


# ----------------------------------------------------------------------------- attention


class _SDPAFn(Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, scale, need_weights):
        res = ops.scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, scale=scale,
                                               return_weights=need_weights, return_lse=True)
        out, lse = res[0], res[-1]
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.args = (mask, is_causal, scale)
        if need_weights:
            w = res[1]
            ctx.mark_non_differentiable(w)
            return out, w
        return out

    @staticmethod
    def backward(ctx, g, _gw=None):
        q, k, v, out, lse = ctx.saved_tensors
        mask, is_causal, scale = ctx.args
        dq, dk, dv = ops.scaled_dot_product_attention_backward(g, q, k, v, out, lse, mask, is_causal=is_causal,
                                                               scale=scale)
        return dq, dk, dv, None, None, None, None


def _sdpa_composite(q, k, v, mask, is_causal, scale, dropout_p, training):
    """softmax(q k^T * scale + mask) with dropout on the weights, then @ v, on Tensor ops
    (used only when attention dropout is active: the kernel has no dropout)."""
    from oxinet.nn.functional import dropout

    L, S = q.shape[-2], k.shape[-2]
    s = (q @ k.transpose(-2, -1)) * scale
    if is_causal:
        mask = np.tril(np.ones((L, S), bool))
    if mask is not None:
        m = _arr(mask)
        if m.dtype == np.bool_:
            s = s + np.where(m, 0.0, -np.inf).astype(s.dtype)
        else:
            s = s + m.astype(s.dtype)
    w = s.softmax(-1)
    # rows that were fully masked: 0 (as the kernel), not NaN
    if mask is not None and np.isnan(w._data).any():
        from oxinet.tensor import where
        w = where(np.isnan(w._data), 0.0, w)
    wd = dropout(w, dropout_p, training)
    return wd @ v, w


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(Q K^T * scale + mask) V on the fused attention kernel (forward and backward).
    query (..., L, E), key (..., S, E), value (..., S, Ev); ``attn_mask`` boolean (True =
    attend) or float (added); ``scale`` defaults to 1/sqrt(E). With ``dropout_p > 0`` the
    weights are dropped out on Tensor ops instead (the kernel has no dropout). Fully masked
    rows give 0 (PyTorch gives NaN)."""
    q, k, v = _t(query), _t(key), _t(value)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    if dropout_p > 0.0:
        return _sdpa_composite(q, k, v, attn_mask, is_causal, scale, dropout_p, True)[0]
    mask = None if attn_mask is None else _arr(attn_mask)
    return _SDPAFn.apply(q, k, v, mask, bool(is_causal), float(scale), False)


# ----------------------------------------------------------------------------- CTC


def _lse3(a, b, c):
    with np.errstate(invalid="ignore"):
        return np.logaddexp(np.logaddexp(a, b), c)


def _ctc_forward_backward(lp, targets, in_lens, tgt_lens, blank):
    """Batched CTC over log-probabilities lp (T, N, C) (float64). Returns (nll (N,),
    grad (T, N, C) of each sample's nll w.r.t. lp)."""
    T, N, C = lp.shape
    U = int(tgt_lens.max()) if N else 0
    S = 2 * U + 1
    ext = np.full((N, S), blank, np.int64)
    for n in range(N):
        ext[n, 1:2 * tgt_lens[n]:2] = targets[n][:tgt_lens[n]]
    s_idx = np.arange(S)
    valid = s_idx[None, :] < (2 * tgt_lens[:, None] + 1)
    skip = np.zeros((N, S), bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    rows = np.arange(N)[:, None]
    emit = lp[:, rows, ext]  # (T, N, S)
    emit = np.where(valid[None], emit, -np.inf)
    ninf = -np.inf
    alpha = np.full((T, N, S), ninf)
    if T:
        alpha[0, :, 0] = emit[0, :, 0]
        if S > 1:
            alpha[0, :, 1] = np.where(tgt_lens > 0, emit[0, :, 1], ninf)
    for t in range(1, T):
        a = alpha[t - 1]
        a1 = np.full_like(a, ninf)
        a1[:, 1:] = a[:, :-1]
        a2 = np.full_like(a, ninf)
        a2[:, 2:] = a[:, :-2]
        a2 = np.where(skip, a2, ninf)
        alpha[t] = _lse3(a, a1, a2) + emit[t]
    last = in_lens - 1
    ends = 2 * tgt_lens
    aT = alpha[last, np.arange(N)]  # (N, S)
    ll = np.logaddexp(aT[np.arange(N), ends], np.where(ends > 0, aT[np.arange(N), np.maximum(ends - 1, 0)], ninf))
    beta = np.full((T, N, S), ninf)
    skip_next = np.zeros((N, S), bool)  # may s jump to s + 2?
    skip_next[:, :-2] = skip[:, 2:]
    for t in range(T - 1, -1, -1):
        if t + 1 < T:
            b = beta[t + 1]
            b1 = np.full_like(b, ninf)
            b1[:, :-1] = b[:, 1:]
            b2 = np.full_like(b, ninf)
            b2[:, :-2] = b[:, 2:]
            b2 = np.where(skip_next, b2, ninf)
            rec = _lse3(b, b1, b2) + emit[t]
        else:
            rec = np.full((N, S), ninf)
        init = np.full((N, S), ninf)
        init[np.arange(N), ends] = emit[t, np.arange(N), ends]
        has2 = ends > 0
        init[np.arange(N)[has2], ends[has2] - 1] = emit[t, np.arange(N)[has2], ends[has2] - 1]
        beta[t] = np.where((t == last)[:, None], init, np.where((t < last)[:, None], rec, ninf))
    # occupation: sum over paths through (t, s) = alpha * beta / y_t(l'_s)
    with np.errstate(invalid="ignore", over="ignore"):
        logocc = alpha + beta - emit - ll[None, :, None]
        occ = np.where(np.isfinite(logocc), np.exp(logocc), 0.0)
    grad = np.zeros((T, N, C))
    tt = np.arange(T)[:, None, None]
    np.add.at(grad, (np.broadcast_to(tt, occ.shape), np.broadcast_to(rows[None], occ.shape),
                     np.broadcast_to(ext[None], occ.shape)), -occ)
    grad[np.arange(T)[:, None] >= in_lens[None, :]] = 0.0
    return -ll, grad


class _CTCFn(Function):
    @staticmethod
    def forward(ctx, lp, targets, in_lens, tgt_lens, blank, reduction, zero_infinity):
        nll, grad = _ctc_forward_backward(lp.astype(np.float64), targets, in_lens, tgt_lens, blank)
        if zero_infinity:
            inf = ~np.isfinite(nll)
            nll = np.where(inf, 0.0, nll)
            grad[:, inf] = 0.0
        if reduction == "mean":
            w = 1.0 / np.maximum(tgt_lens, 1) / max(len(nll), 1)
            out = np.asarray((nll * w).sum() if len(nll) else np.nan)
        elif reduction == "sum":
            w = np.ones_like(nll)
            out = np.asarray(nll.sum())
        else:
            w = None
            out = nll
        ctx.grad, ctx.w, ctx.dtype = grad, w, lp.dtype
        return out.astype(lp.dtype)

    @staticmethod
    def backward(ctx, g):
        g = np.asarray(g, np.float64)
        scale = g if ctx.w is None else g * ctx.w
        return (ctx.grad * scale[None, :, None]).astype(ctx.dtype), None, None, None, None, None, None


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist Temporal Classification loss (PyTorch's semantics).

    log_probs: (T, N, C) or unbatched (T, C) log-probabilities (e.g. ``log_softmax``);
    targets: (N, S) padded or 1-D concatenated (sum(target_lengths),), never containing
    ``blank``; input_lengths, target_lengths: (N,) ints. The loss is -log p(target | x)
    summed over all alignments (forward-backward in log space). reduction 'mean' divides
    each loss by its target length, then averages over the batch; 'sum' adds; 'none' gives
    (N,). ``zero_infinity`` replaces infinite losses (impossible alignments) and their
    gradients by 0. The gradient is the exact one w.r.t. ``log_probs`` (for normalised
    log-probabilities it gives, through ``log_softmax``, the same logits gradient as PyTorch).
    """
    op = "ctc_loss"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{op}: 'reduction' must be 'none', 'mean' or 'sum', got {reduction!r}")
    lp = _t(log_probs)
    if lp.dtype.kind != "f":
        raise TypeError(f"{op}: 'log_probs' must be floating, got dtype {lp.dtype}")
    unbatched = lp.ndim == 2
    if unbatched:
        lp = lp.unsqueeze(1)
    if lp.ndim != 3:
        raise ValueError(f"{op}: 'log_probs' must be (T, N, C) or (T, C), got shape {tuple(_arr(log_probs).shape)}")
    T, N, C = lp.shape
    tg = _arr(targets)
    il = np.atleast_1d(_arr(input_lengths)).astype(np.int64).reshape(-1)
    tl = np.atleast_1d(_arr(target_lengths)).astype(np.int64).reshape(-1)
    if tg.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'targets' must hold integer class indices, got dtype {tg.dtype}")
    if il.shape != (N,):
        raise ValueError(f"{op}: 'input_lengths' has shape {il.shape}, expected ({N},)")
    if tl.shape != (N,):
        raise ValueError(f"{op}: 'target_lengths' has shape {tl.shape}, expected ({N},)")
    if N and (il.min() < 1 or il.max() > T):
        raise ValueError(f"{op}: 'input_lengths' must lie in 1..{T}, got {il.tolist()}")
    if N and tl.min() < 0:
        raise ValueError(f"{op}: 'target_lengths' must be >= 0, got {tl.tolist()}")
    if unbatched and tg.ndim == 1:
        tg = tg[None]
    if tg.ndim == 1:
        if tg.shape[0] != tl.sum():
            raise ValueError(f"{op}: 1-D 'targets' has {tg.shape[0]} labels but target_lengths sum to {tl.sum()}")
        offs = np.concatenate([[0], np.cumsum(tl)])
        rows = [tg[offs[n]:offs[n + 1]] for n in range(N)]
    elif tg.ndim == 2:
        if tg.shape[0] != N or (N and tl.max() > tg.shape[1]):
            raise ValueError(f"{op}: 'targets' has shape {tg.shape}, expected ({N}, >= max(target_lengths))")
        rows = [tg[n, :tl[n]] for n in range(N)]
    else:
        raise ValueError(f"{op}: 'targets' must be 1-D or 2-D, got shape {tg.shape}")
    for r in rows:
        if r.size and (r.min() < 0 or r.max() >= C or (r == blank).any()):
            raise ValueError(f"{op}: 'targets' must be in [0, {C}) and must not contain the blank index {blank}")
    if not 0 <= blank < C:
        raise ValueError(f"{op}: 'blank' must be in [0, {C}), got {blank}")
    width = max([len(r) for r in rows] + [1])
    padded = np.zeros((N, width), np.int64)
    for n, r in enumerate(rows):
        padded[n, :len(r)] = r
    out = _CTCFn.apply(lp, padded, il, tl, blank, reduction, bool(zero_infinity))
    if unbatched and reduction == "none":
        out = out.reshape(())
    return out
