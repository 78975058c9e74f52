"""Recurrent layers on NumPy arrays: Elman RNN, GRU and LSTM cells and whole sequences.

Shapes, gate orders and argument meanings follow PyTorch (``torch.nn.RNN/GRU/LSTM`` and
their cells):

- LSTM gates are stacked i, f, g, o: ``w_ih (4H, D)``, ``w_hh (4H, H)``, biases ``(4H,)``;
  ``c' = f * c + i * g``, ``h' = o * tanh(c')``.
- GRU gates are stacked r, z, n: ``w_ih (3H, D)``, ``w_hh (3H, H)``;
  ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
- Elman RNN: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or relu).

Sequences are time-major ``(T, B, D)``, or ``(B, T, D)`` with ``batch_first=True``. The
whole time loop runs in Rust: the input projections of all steps are one large matrix
product, each step only multiplies by ``W_hh`` and applies the fused gate
nonlinearities, and the backward pass (BPTT) mirrors it.

Training protocol: call a sequence op with ``return_cache=True``; it returns an extra
:class:`RNNCache` holding what the backward pass needs (the gate activations, the
hidden and cell states of every step, and references to ``x`` and the weights). Pass it
to the matching ``*_backward`` with the gradients of the outputs. The cache shares
memory with the returned ``y`` (time-major) and refers to the input arrays, so do not
modify them in place before calling backward.

Variable lengths: ``lengths`` (B integers in 1..T) gives each sequence's true length in
a padded batch. Outputs past a sequence's end are zero, its final state is the state
at its own last step (as with PyTorch's packed sequences), and gradients are
consistent with that.

Gradients of arguments passed as ``None`` (``h0``, ``c0``, biases) are returned as
``None``. float32 is the default dtype, float64 is kept, mixing promotes to float64.

Not supported (compared with ``torch.nn.LSTM``): dropout between stacked layers and
LSTM ``proj_size``. Unbatched (T, D) input is accepted by the ``*_stack`` functions.
float32 gate nonlinearities use vectorised approximations within ~2 ulp; float64 uses
the exact library functions (for gradient checks).
"""

from __future__ import annotations

import operator

import numpy as np

from oxinet import _core
from oxinet.ops._checks import as_float_array, kernel_for, result_dtype

__all__ = [
    "RNNCache",
    "CellCache",
    "rnn_cell",
    "rnn_cell_backward",
    "gru_cell",
    "gru_cell_backward",
    "lstm_cell",
    "lstm_cell_backward",
    "rnn",
    "rnn_backward",
    "gru",
    "gru_backward",
    "lstm",
    "lstm_backward",
    "rnn_stack",
    "rnn_stack_backward",
    "gru_stack",
    "gru_stack_backward",
    "lstm_stack",
    "lstm_stack_backward",
]

_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _kind(nonlinearity, op: str) -> str:
    if nonlinearity == "tanh":
        return "rnn_tanh"
    if nonlinearity == "relu":
        return "rnn_relu"
    raise ValueError(f"{op}: 'nonlinearity' must be 'tanh' or 'relu', got {nonlinearity!r}")


class RNNCache:
    """State saved by a forward pass (``return_cache=True``) for its backward pass.

    Attributes: ``kind`` ('lstm', 'gru', 'rnn_tanh', 'rnn_relu'), ``x`` (time-major,
    contiguous), ``w_ih``, ``w_hh``, ``lengths`` (int64 or None), ``hs`` (T+1, B, H: h0
    then every step's output), ``cs`` (LSTM cell states, T+1, B, H), ``gates``
    (activated gates, T, B, G*H), ``hn`` (GRU: W_hn h + b_hn per step), and the flags
    that restore the caller's layout (``batch_first``, which optional inputs were given).
    """

    __slots__ = (
        "kind", "x", "w_ih", "w_hh", "lengths", "hs", "cs", "gates", "hn", "batch_first",
        "state_rank", "has_h0", "has_c0", "has_b_ih", "has_b_hh", "dtype",
    )

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def __repr__(self) -> str:
        t1, b, h = self.hs.shape
        return f"RNNCache(kind={self.kind!r}, T={t1 - 1}, B={b}, H={h}, dtype={self.dtype})"


def _check_lengths(lengths, t: int, b: int, op: str):
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{op}: 'lengths' must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (b,):
        raise ValueError(f"{op}: 'lengths' has shape {arr.shape} but must be ({b},) (one length per batch entry)")
    if b and (arr.min() < 1 or arr.max() > t):
        bad = arr[(arr < 1) | (arr > t)][0]
        raise ValueError(f"{op}: 'lengths' must lie in 1..{t} (the sequence length), got {bad}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _check_weights(kind: str, op: str, d: int, w_ih, w_hh, b_ih, b_hh, x_shape):
    g = _GATES[kind]
    if w_hh.ndim != 2 or w_hh.shape[1] < 1 or w_hh.shape[0] != g * w_hh.shape[1]:
        raise ValueError(
            f"{op}: 'w_hh' has shape {w_hh.shape} but must be ({g}*hidden_size, hidden_size)"
        )
    h = w_hh.shape[1]
    if w_ih.shape != (g * h, d):
        raise ValueError(
            f"{op}: 'w_ih' has shape {w_ih.shape} but must be ({g * h}, {d}) for hidden size {h} "
            f"and input of shape {x_shape}"
        )
    for name, bias in (("b_ih", b_ih), ("b_hh", b_hh)):
        if bias is not None and bias.shape != (g * h,):
            raise ValueError(f"{op}: '{name}' has shape {bias.shape} but must be ({g * h},) for hidden size {h}")
    return h


def _check_state(s, name: str, b: int, h: int, op: str):
    """(B, H) or (1, B, H) state; returns the 2-D view and the rank given."""
    if s is None:
        return None, None
    if s.ndim == 3 and s.shape[0] == 1:
        s2 = s[0]
    elif s.ndim == 2:
        s2 = s
    else:
        s2 = None
    if s2 is None or s2.shape != (b, h):
        raise ValueError(
            f"{op}: '{name}' has shape {s.shape} but must be ({b}, {h}) or (1, {b}, {h}) (batch, hidden_size)"
        )
    return s2, s.ndim


def _c(a, dtype):
    return None if a is None else np.ascontiguousarray(a, dtype=dtype)


def _forward(kind, op, x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_first, lengths, train):
    """Validate, run the fused kernel. Returns (y, h_n, c_n, cache or None)."""
    x = as_float_array(x, "x", op)
    w_ih = as_float_array(w_ih, "w_ih", op)
    w_hh = as_float_array(w_hh, "w_hh", op)
    opt = {}
    for name, a in (("h0", h0), ("c0", c0), ("b_ih", b_ih), ("b_hh", b_hh)):
        opt[name] = None if a is None else as_float_array(a, name, op)
    if kind != "lstm" and opt["c0"] is not None:
        raise ValueError(f"{op}: 'c0' is only used by lstm")
    if x.ndim != 3:
        layout = "(B, T, D) with batch_first=True" if batch_first else "(T, B, D)"
        raise ValueError(f"{op}: 'x' must be 3-D {layout}, got shape {x.shape}")
    if w_ih.ndim != 2:
        raise ValueError(f"{op}: 'w_ih' must be 2-D, got shape {w_ih.shape}")
    x_tm = x.transpose(1, 0, 2) if batch_first else x
    t, b, d = x_tm.shape
    if t == 0:
        raise ValueError(f"{op}: 'x' has no time steps (shape {x.shape})")
    h = _check_weights(kind, op, d, w_ih, w_hh, opt["b_ih"], opt["b_hh"], x.shape)
    h0_2, rank_h = _check_state(opt["h0"], "h0", b, h, op)
    c0_2, rank_c = _check_state(opt["c0"], "c0", b, h, op)
    lens = _check_lengths(lengths, t, b, op)
    dtype = result_dtype(x, w_ih, w_hh, *(a for a in opt.values() if a is not None))
    fwd = kernel_for(dtype, _core.rnn_forward_f32, _core.rnn_forward_f64)
    x_c = np.ascontiguousarray(x_tm, dtype=dtype)
    w_ih_c, w_hh_c = _c(w_ih, dtype), _c(w_hh, dtype)
    hs, h_n, c_n, gates, cs, hn = fwd(
        kind, x_c, _c(h0_2, dtype), _c(c0_2, dtype), w_ih_c, w_hh_c,
        _c(opt["b_ih"], dtype), _c(opt["b_hh"], dtype), lens, bool(train),
    )
    y = hs[1:]
    if batch_first:
        y = np.ascontiguousarray(y.transpose(1, 0, 2))
    rank = rank_h or rank_c or 2
    if rank == 3:
        h_n = h_n[np.newaxis]
        c_n = None if c_n is None else c_n[np.newaxis]
    cache = None
    if train:
        cache = RNNCache(
            kind=kind, x=x_c, w_ih=w_ih_c, w_hh=w_hh_c, lengths=lens, hs=hs, cs=cs, gates=gates, hn=hn,
            batch_first=bool(batch_first), state_rank=rank, has_h0=opt["h0"] is not None,
            has_c0=opt["c0"] is not None, has_b_ih=opt["b_ih"] is not None,
            has_b_hh=opt["b_hh"] is not None, dtype=dtype,
        )
    return y, h_n, c_n, cache


def _grad_arg(a, name: str, shape: tuple, dtype, op: str, alt_shape=None):
    if a is None:
        return None
    a = as_float_array(a, name, op)
    if a.shape != shape and (alt_shape is None or a.shape != alt_shape):
        raise ValueError(f"{op}: '{name}' has shape {a.shape} but must be {shape}")
    return np.ascontiguousarray(a.reshape(shape), dtype=dtype)


def _backward(op, kind_family, dy, dh_n, dc_n, cache, need_dx=True):
    if not isinstance(cache, RNNCache):
        raise TypeError(f"{op}: 'cache' must be the RNNCache returned by the forward pass with return_cache=True, "
                        f"got {type(cache).__name__}")
    if kind_family == "rnn":
        if cache.kind not in ("rnn_tanh", "rnn_relu"):
            raise ValueError(f"{op}: 'cache' comes from a {cache.kind} forward pass")
    elif cache.kind != kind_family:
        raise ValueError(f"{op}: 'cache' comes from a {cache.kind} forward pass")
    t1, b, h = cache.hs.shape
    t = t1 - 1
    dtype = cache.dtype
    y_shape = (b, t, h) if cache.batch_first else (t, b, h)
    dy_c = _grad_arg(dy, "dy", y_shape, dtype, op)
    if dy_c is not None and cache.batch_first:
        dy_c = np.ascontiguousarray(dy_c.transpose(1, 0, 2))
    dh_c = _grad_arg(dh_n, "dh_n", (b, h), dtype, op, alt_shape=(1, b, h))
    dc_c = _grad_arg(dc_n, "dc_n", (b, h), dtype, op, alt_shape=(1, b, h))
    bwd = kernel_for(dtype, _core.rnn_backward_f32, _core.rnn_backward_f64)
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = bwd(
        cache.kind, cache.x, cache.w_ih, cache.w_hh, cache.lengths, cache.hs, cache.cs,
        cache.gates, cache.hn, dy_c, dh_c, dc_c, bool(need_dx),
    )
    if cache.batch_first and dx is not None:
        dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
    if cache.state_rank == 3:
        dh0 = dh0[np.newaxis]
        dc0 = None if dc0 is None else dc0[np.newaxis]
    dh0 = dh0 if cache.has_h0 else None
    dc0 = dc0 if cache.has_c0 else None
    db_ih = db_ih if cache.has_b_ih else None
    db_hh = db_hh if cache.has_b_hh else None
    return dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh


# ------------------------------------------------------------------------------------
# Whole sequences, one layer and direction


def lstm(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, batch_first=False, lengths=None, *, return_cache=False):
    """One LSTM layer over a whole sequence (PyTorch's gate order i, f, g, o).

    x: (T, B, D), or (B, T, D) with ``batch_first``; h0, c0: (B, H) or (1, B, H), or
    None for zeros; w_ih: (4H, D); w_hh: (4H, H); b_ih, b_hh: (4H,) or None;
    lengths: optional (B,) integers in 1..T for padded batches.

    Returns ``(y, h_n, c_n)``: y (T, B, H) (or (B, T, H)), zero past each sequence's
    length; h_n, c_n (B, H) at each sequence's end ((1, B, H) if the states were given
    that way). With ``return_cache=True`` a fourth element, the :class:`RNNCache` for
    :func:`lstm_backward`.
    """
    y, h_n, c_n, cache = _forward("lstm", "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_first, lengths,
                                  return_cache)
    return (y, h_n, c_n, cache) if return_cache else (y, h_n, c_n)


def lstm_backward(dy, dh_n, dc_n, cache, *, need_dx=True):
    """BPTT through :func:`lstm`. dy like y, dh_n and dc_n like h_n (each may be None).

    Returns ``(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)``; entries for arguments that
    were None in the forward call are None. ``need_dx=False`` skips the input gradient
    (its product is about a sixth of the backward's arithmetic when D = H/2) and returns
    None for dx: for a first layer fed with data that needs no gradient.
    """
    return _backward("lstm_backward", "lstm", dy, dh_n, dc_n, cache, need_dx)


def gru(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, batch_first=False, lengths=None, *, return_cache=False):
    """One GRU layer over a whole sequence (PyTorch's gates r, z, n, with
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).

    x: (T, B, D) (or (B, T, D) with ``batch_first``); h0: (B, H), (1, B, H) or None;
    w_ih: (3H, D); w_hh: (3H, H); b_ih, b_hh: (3H,) or None; lengths as in :func:`lstm`.
    Returns ``(y, h_n)`` (plus the cache with ``return_cache=True``).
    """
    y, h_n, _, cache = _forward("gru", "gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, batch_first, lengths,
                                return_cache)
    return (y, h_n, cache) if return_cache else (y, h_n)


def gru_backward(dy, dh_n, cache, *, need_dx=True):
    """BPTT through :func:`gru`. Returns ``(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)``; dx is
    None with ``need_dx=False`` (see :func:`lstm_backward`)."""
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = _backward("gru_backward", "gru", dy, dh_n, None, cache, need_dx)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def rnn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", batch_first=False, lengths=None, *,
        return_cache=False):
    """One Elman RNN layer: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, act tanh or relu.

    Shapes as in :func:`gru` with G = 1 (w_ih (H, D), w_hh (H, H)). Returns ``(y, h_n)``
    (plus the cache with ``return_cache=True``).
    """
    kind = _kind(nonlinearity, "rnn")
    y, h_n, _, cache = _forward(kind, "rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, batch_first, lengths,
                                return_cache)
    return (y, h_n, cache) if return_cache else (y, h_n)


def rnn_backward(dy, dh_n, cache, *, need_dx=True):
    """BPTT through :func:`rnn`. Returns ``(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)``; dx is
    None with ``need_dx=False`` (see :func:`lstm_backward`)."""
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = _backward("rnn_backward", "rnn", dy, dh_n, None, cache, need_dx)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


# ------------------------------------------------------------------------------------
# Cells: one step (the course's view). Unbatched inputs (D,) / (H,) are accepted.


def _cell_forward(kind, op, x, h, c, w_ih, w_hh, b_ih, b_hh, train):
    x = as_float_array(x, "x", op)
    if x.ndim not in (1, 2):
        raise ValueError(f"{op}: 'x' must be 1-D (input_size,) or 2-D (batch, input_size), got shape {x.shape}")
    unbatched = x.ndim == 1
    states = []
    for name, s in (("h", h), ("c", c)):
        if s is None:
            states.append(None)
            continue
        s = as_float_array(s, name, op)
        if s.ndim != x.ndim:
            raise ValueError(f"{op}: '{name}' has shape {s.shape} but 'x' has shape {x.shape}; "
                             f"both must be batched (2-D) or unbatched (1-D)")
        states.append(s[np.newaxis] if unbatched else s)
    x2 = x[np.newaxis] if unbatched else x
    y, h_n, c_n, cache = _forward(kind, op, x2[np.newaxis], states[0], states[1], w_ih, w_hh, b_ih, b_hh,
                                  False, None, train)
    if unbatched:
        h_n = h_n[0]
        c_n = None if c_n is None else c_n[0]
    if cache is not None:
        # the step's activated gates and the one state its backward needs (see CellCache)
        if kind == "lstm":
            gates, state = cache.gates[0], cache.cs[1]
        elif kind == "gru":
            gates, state = cache.gates[0], cache.hn[0]
        else:
            gates = state = cache.hs[1]
        cache = CellCache(kind, gates, state)
    return h_n, c_n, cache, unbatched


class CellCache:
    """What a cell's forward with ``return_cache=True`` keeps for its backward, so that
    the backward does not recompute the step: the activated gates ``(B, G*H)`` (the
    output for the Elman cell) and one state ``(B, H)``: ``c'`` (LSTM), ``W_hn h + b_hn``
    (GRU) or ``h'`` (Elman). Only valid with the same inputs and weights as its forward."""

    __slots__ = ("kind", "gates", "state")

    def __init__(self, kind, gates, state):
        self.kind, self.gates, self.state = kind, gates, state

    def __repr__(self) -> str:
        return f"CellCache(kind={self.kind!r}, B={self.gates.shape[0]}, dtype={self.gates.dtype})"


def _cell_backward(kind, op, dh_next, dc_next, x, h, c, w_ih, w_hh, b_ih, b_hh, cache=None):
    """Differentiate one step in one kernel call: from the forward's :class:`CellCache`
    when given, else recomputing the step."""
    x = as_float_array(x, "x", op)
    if x.ndim not in (1, 2):
        raise ValueError(f"{op}: 'x' must be 1-D (input_size,) or 2-D (batch, input_size), got shape {x.shape}")
    unbatched = x.ndim == 1
    w_ih = as_float_array(w_ih, "w_ih", op)
    w_hh = as_float_array(w_hh, "w_hh", op)
    if w_ih.ndim != 2:
        raise ValueError(f"{op}: 'w_ih' must be 2-D, got shape {w_ih.shape}")
    x2 = x[np.newaxis] if unbatched else x
    b, d = x2.shape
    opt = {}
    for name, a in (("b_ih", b_ih), ("b_hh", b_hh)):
        opt[name] = None if a is None else as_float_array(a, name, op)
    hsz = _check_weights(kind, op, d, w_ih, w_hh, opt["b_ih"], opt["b_hh"], x.shape)
    state_shape = (hsz,) if unbatched else (b, hsz)
    arrs = {}
    for name, s, what in (("h", h, "'x'"), ("c", c, "'x'"), ("dh_next", dh_next, None), ("dc_next", dc_next, None)):
        if s is None:
            arrs[name] = None
            continue
        s = as_float_array(s, name, op)
        if what is not None and s.ndim != x.ndim:
            raise ValueError(f"{op}: '{name}' has shape {s.shape} but 'x' has shape {x.shape}; "
                             f"both must be batched (2-D) or unbatched (1-D)")
        if s.shape != state_shape:
            if what is not None:
                raise ValueError(f"{op}: '{name}' has shape {s.shape} but must be {state_shape} (hidden size {hsz})")
            raise ValueError(f"{op}: '{name}' has shape {s.shape} but the new state has shape {state_shape}")
        arrs[name] = s.reshape(b, hsz)
    dtype = result_dtype(x, w_ih, w_hh, *(a for a in (*opt.values(), arrs["h"], arrs["c"]) if a is not None))
    saved = {}
    if cache is not None:
        if not isinstance(cache, CellCache):
            raise TypeError(f"{op}: 'cache' must be the CellCache of the forward call with return_cache=True, "
                            f"got {type(cache).__name__}")
        if cache.kind != kind:
            raise ValueError(f"{op}: 'cache' comes from a {cache.kind} cell")
        if cache.gates.dtype != dtype:
            raise ValueError(f"{op}: 'cache' holds {cache.gates.dtype} but the inputs compute in {dtype}")
        saved = {"gates": cache.gates, "state": cache.state}
    bwd = kernel_for(dtype, _core.rnn_cell_backward_f32, _core.rnn_cell_backward_f64)
    dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh = bwd(
        kind, _c(x2, dtype), _c(arrs["h"], dtype), _c(arrs["c"], dtype), _c(w_ih, dtype), _c(w_hh, dtype),
        _c(opt["b_ih"], dtype), _c(opt["b_hh"], dtype), _c(arrs["dh_next"], dtype), _c(arrs["dc_next"], dtype),
        **saved,
    )
    dx = dx[0]
    dh = dh if h is not None else None
    dc = dc if c is not None else None
    db_ih = db_ih if b_ih is not None else None
    db_hh = db_hh if b_hh is not None else None
    if unbatched:
        dx = dx[0]
        dh = None if dh is None else dh[0]
        dc = None if dc is None else dc[0]
    return dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh


def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", *, return_cache=False):
    """One Elman RNN step: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    x: (B, D) or (D,); h: (B, H) or (H,) or None (zeros); w_ih: (H, D); w_hh: (H, H);
    biases (H,) or None. Returns h' shaped like h; with ``return_cache=True`` also the
    :class:`CellCache` that lets :func:`rnn_cell_backward` skip recomputing the step.
    """
    kind = _kind(nonlinearity, "rnn_cell")
    h_n, _, cache, _ = _cell_forward(kind, "rnn_cell", x, h, None, w_ih, w_hh, b_ih, b_hh, return_cache)
    return (h_n, cache) if return_cache else h_n


def rnn_cell_backward(dh_next, x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", *, cache=None):
    """Gradients of :func:`rnn_cell` given ``dh_next`` = dL/dh'.

    Returns ``(dx, dh, dw_ih, dw_hh, db_ih, db_hh)`` (None for arguments given as None).
    ``cache``: the forward's :class:`CellCache` (same arguments), or None to recompute.
    """
    kind = _kind(nonlinearity, "rnn_cell_backward")
    dx, dh, _, dw_ih, dw_hh, db_ih, db_hh = _cell_backward(
        kind, "rnn_cell_backward", dh_next, None, x, h, None, w_ih, w_hh, b_ih, b_hh, cache)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, *, return_cache=False):
    """One GRU step (PyTorch's r, z, n order). x: (B, D) or (D,); h: (B, H), (H,) or None;
    w_ih: (3H, D); w_hh: (3H, H); biases (3H,) or None. Returns h' (and the
    :class:`CellCache` with ``return_cache=True``)."""
    h_n, _, cache, _ = _cell_forward("gru", "gru_cell", x, h, None, w_ih, w_hh, b_ih, b_hh, return_cache)
    return (h_n, cache) if return_cache else h_n


def gru_cell_backward(dh_next, x, h, w_ih, w_hh, b_ih=None, b_hh=None, *, cache=None):
    """Gradients of :func:`gru_cell`: ``(dx, dh, dw_ih, dw_hh, db_ih, db_hh)``; ``cache``
    as in :func:`rnn_cell_backward`."""
    dx, dh, _, dw_ih, dw_hh, db_ih, db_hh = _cell_backward(
        "gru", "gru_cell_backward", dh_next, None, x, h, None, w_ih, w_hh, b_ih, b_hh, cache)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, *, return_cache=False):
    """One LSTM step (gates i, f, g, o). x: (B, D) or (D,); h, c: (B, H), (H,) or None;
    w_ih: (4H, D); w_hh: (4H, H); biases (4H,) or None. Returns ``(h', c')``, plus the
    :class:`CellCache` for :func:`lstm_cell_backward` with ``return_cache=True``."""
    h_n, c_n, cache, _ = _cell_forward("lstm", "lstm_cell", x, h, c, w_ih, w_hh, b_ih, b_hh, return_cache)
    return (h_n, c_n, cache) if return_cache else (h_n, c_n)


def lstm_cell_backward(dh_next, dc_next, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, *, cache=None):
    """Gradients of :func:`lstm_cell` given dL/dh' and dL/dc' (either may be None).

    Returns ``(dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh)``. ``cache``: the forward's
    :class:`CellCache` (same arguments), which saves recomputing the step; None recomputes."""
    return _cell_backward("lstm", "lstm_cell_backward", dh_next, dc_next, x, h, c, w_ih, w_hh, b_ih, b_hh,
                          cache)


# ------------------------------------------------------------------------------------
# Stacked and bidirectional, composed from the fused per-layer call


def _reverse_index(t: int, b: int, lens):
    """idx[t, b] such that x[idx, arange(B)] reverses each sequence within its length
    (padding stays in place). The map is its own inverse."""
    tt = np.arange(t)[:, None]
    if lens is None:
        return np.broadcast_to(t - 1 - tt, (t, b))
    lens = lens[None, :]
    return np.where(tt < lens, lens - 1 - tt, tt)


def _weight_names(num_layers: int, dirs: int, bias: bool):
    names = []
    for k in range(num_layers):
        for sfx in ("", "_reverse")[:dirs]:
            names += [f"weight_ih_l{k}{sfx}", f"weight_hh_l{k}{sfx}"]
            if bias:
                names += [f"bias_ih_l{k}{sfx}", f"bias_hh_l{k}{sfx}"]
    return names


def _split_weights(weights, num_layers: int, dirs: int, op: str):
    """Weights as a list in PyTorch's flat order or a dict of PyTorch's names ->
    (per-layer-per-direction tuples (w_ih, w_hh, b_ih, b_hh), names, as_dict)."""
    as_dict = isinstance(weights, dict)
    if as_dict:
        bias = "bias_ih_l0" in weights
        names = _weight_names(num_layers, dirs, bias)
        missing = [n for n in names if n not in weights]
        extra = [n for n in weights if n not in names]
        if missing or extra:
            raise ValueError(f"{op}: 'weights' must have the keys {names}; missing {missing}, unexpected {extra}")
        flat = [weights[n] for n in names]
    else:
        flat = list(weights)
        per = len(flat) / (num_layers * dirs)
        if per not in (2, 4):
            raise ValueError(
                f"{op}: 'weights' has {len(flat)} arrays but num_layers={num_layers} with "
                f"{dirs} direction(s) needs {2 * num_layers * dirs} (no bias) or {4 * num_layers * dirs}"
            )
        bias = per == 4
        names = _weight_names(num_layers, dirs, bias)
    n = 4 if bias else 2
    groups = []
    for i in range(num_layers * dirs):
        g = flat[i * n:(i + 1) * n]
        groups.append((g[0], g[1], g[2] if bias else None, g[3] if bias else None))
    return groups, names, as_dict


class _StackCache:
    __slots__ = ("kind", "caches", "num_layers", "dirs", "lens", "rev_idx", "batch_first", "t", "b",
                 "has_h0", "has_c0", "bias", "names", "as_dict", "unbatched")


def _stack_forward(kind, op, x, h0, c0, weights, num_layers, bidirectional, batch_first, lengths, train):
    try:
        num_layers = operator.index(num_layers)
    except TypeError:
        raise TypeError(f"{op}: 'num_layers' must be an int, got {type(num_layers).__name__}") from None
    if num_layers < 1:
        raise ValueError(f"{op}: 'num_layers' must be >= 1, got {num_layers}")
    dirs = 2 if bidirectional else 1
    groups, names, as_dict = _split_weights(weights, num_layers, dirs, op)
    x = as_float_array(x, "x", op)
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: 'x' must be 3-D (T, B, D) or (B, T, D) with batch_first, or 2-D (T, D) "
                         f"unbatched, got shape {x.shape}")
    unbatched = x.ndim == 2
    if unbatched:
        # PyTorch's unbatched form: x (T, D), states (num_layers * num_directions, H);
        # batch_first does not apply.
        if lengths is not None:
            raise ValueError(f"{op}: 'lengths' needs a batch; got unbatched 'x' of shape {x.shape}")
        x = x[:, np.newaxis, :]
        batch_first = False
    x_tm = x.transpose(1, 0, 2) if batch_first else x
    t, b, _ = x_tm.shape
    w_hh0 = as_float_array(groups[0][1], "weights", op)
    if w_hh0.ndim != 2:
        raise ValueError(f"{op}: '{names[1]}' must be 2-D, got shape {w_hh0.shape}")
    h = w_hh0.shape[1]
    nstate = num_layers * dirs
    states = []
    for name, s in (("h0", h0), ("c0", c0)):
        if s is None:
            states.append(None)
            continue
        s = as_float_array(s, name, op)
        if unbatched:
            if s.shape != (nstate, h):
                raise ValueError(f"{op}: '{name}' has shape {s.shape} but must be ({nstate}, {h}) "
                                 f"(num_layers * num_directions, hidden_size) for unbatched 'x'")
            s = s[:, np.newaxis, :]
        elif s.shape != (nstate, b, h):
            raise ValueError(f"{op}: '{name}' has shape {s.shape} but must be ({nstate}, {b}, {h}) "
                             f"(num_layers * num_directions, batch, hidden_size)")
        states.append(s)
    lens = _check_lengths(lengths, t, b, op) if t else None
    rev = _reverse_index(t, b, lens) if dirs == 2 else None
    cols = np.arange(b)[None, :]
    layer_in = x_tm
    hs_out, cs_out, caches = [], [], []
    for k in range(num_layers):
        outs = []
        for dr in range(dirs):
            i = k * dirs + dr
            w_ih, w_hh, b_ih, b_hh = groups[i]
            inp = layer_in if dr == 0 else layer_in[rev, cols]
            hh = None if states[0] is None else states[0][i]
            cc = None if states[1] is None else states[1][i]
            lop = f"{op} (layer {k}{', reverse' if dr else ''})"
            try:
                y, h_n, c_n, cache = _forward(kind, lop, inp, hh, cc, w_ih, w_hh, b_ih, b_hh, False, lens, train)
            except (ValueError, TypeError) as e:
                # Name the weight as PyTorch does, e.g. 'weight_ih_l1_reverse'.
                sfx = "_reverse" if dr else ""
                msg = str(e)
                for short, long in (("'w_ih'", f"'weight_ih_l{k}{sfx}'"), ("'w_hh'", f"'weight_hh_l{k}{sfx}'"),
                                    ("'b_ih'", f"'bias_ih_l{k}{sfx}'"), ("'b_hh'", f"'bias_hh_l{k}{sfx}'")):
                    msg = msg.replace(short, long)
                raise type(e)(msg) from None
            if dr == 1:
                y = y[rev, cols]
            outs.append(y)
            hs_out.append(h_n)
            cs_out.append(c_n)
            caches.append(cache)
        layer_in = outs[0] if dirs == 1 else np.concatenate(outs, axis=2)
    y = layer_in
    if batch_first:
        y = np.ascontiguousarray(y.transpose(1, 0, 2))
    h_n = np.stack(hs_out)
    c_n = np.stack(cs_out) if kind == "lstm" else None
    if unbatched:
        y, h_n = y[:, 0], h_n[:, 0]
        c_n = None if c_n is None else c_n[:, 0]
    sc = None
    if train:
        sc = _StackCache()
        sc.kind, sc.caches, sc.num_layers, sc.dirs = kind, caches, num_layers, dirs
        sc.lens, sc.rev_idx, sc.batch_first, sc.t, sc.b = lens, rev, bool(batch_first), t, b
        sc.has_h0, sc.has_c0 = states[0] is not None, states[1] is not None
        sc.bias, sc.names, sc.as_dict = groups[0][2] is not None, names, as_dict
        sc.unbatched = unbatched
    return y, h_n, c_n, sc


def _stack_backward(op, family, dy, dh_n, dc_n, sc, need_dx=True):
    if not isinstance(sc, _StackCache):
        raise TypeError(f"{op}: 'cache' must be the cache returned by the stacked forward pass with "
                        f"return_cache=True, got {type(sc).__name__}")
    if (family == "rnn") != sc.kind.startswith("rnn") or (family != "rnn" and sc.kind != family):
        raise ValueError(f"{op}: 'cache' comes from a {sc.kind} forward pass")
    t, b, dirs, L = sc.t, sc.b, sc.dirs, sc.num_layers
    first = sc.caches[-1]
    h = first.hs.shape[2]
    dtype = first.dtype
    y_shape = (b, t, dirs * h) if sc.batch_first else (t, b, dirs * h)
    s_shape = (L * dirs, b, h)
    if sc.unbatched:
        y_shape, s_shape = (t, dirs * h), (L * dirs, h)
    dy_c = _grad_arg(dy, "dy", y_shape, dtype, op)
    if dy_c is not None and sc.batch_first:
        dy_c = dy_c.transpose(1, 0, 2)
    dh_c = _grad_arg(dh_n, "dh_n", s_shape, dtype, op)
    dc_c = _grad_arg(dc_n, "dc_n", s_shape, dtype, op)
    if sc.unbatched:
        dy_c, dh_c, dc_c = (None if a is None else a[:, np.newaxis, :] for a in (dy_c, dh_c, dc_c))
    cols = np.arange(b)[None, :]
    rev = sc.rev_idx
    grads = [None] * (L * dirs)
    dh0 = np.zeros((L * dirs, b, h), dtype) if sc.has_h0 else None
    dc0 = np.zeros((L * dirs, b, h), dtype) if sc.has_c0 else None
    d_out = dy_c  # gradient w.r.t. this layer's output (T, B, dirs*H), or None
    for k in range(L - 1, -1, -1):
        d_in = None
        for dr in range(dirs):
            i = k * dirs + dr
            cache = sc.caches[i]
            dyk = None if d_out is None else d_out[:, :, dr * h:(dr + 1) * h]
            if dyk is not None and dr == 1:
                dyk = dyk[rev, cols]
            dhk = None if dh_c is None else dh_c[i]
            dck = None if dc_c is None else dc_c[i]
            # Layers above the first pass dx down; the first layer's is the result.
            dx, dhi, dci, dw_ih, dw_hh, db_ih, db_hh = _backward(op, family, dyk, dhk, dck, cache,
                                                                 need_dx or k > 0)
            if dx is not None:
                if dr == 1:
                    dx = dx[rev, cols]
                d_in = dx if d_in is None else d_in + dx
            if dh0 is not None:
                dh0[i] = dhi
            if dc0 is not None:
                dc0[i] = dci
            grads[i] = (dw_ih, dw_hh, db_ih, db_hh)
        d_out = d_in
    dx = d_out
    if dx is not None and sc.batch_first:
        dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
    if sc.unbatched:
        dx = None if dx is None else dx[:, 0]
        dh0 = None if dh0 is None else dh0[:, 0]
        dc0 = None if dc0 is None else dc0[:, 0]
    flat = []
    for g in grads:
        flat += [g[0], g[1]] + ([g[2], g[3]] if sc.bias else [])
    dweights = dict(zip(sc.names, flat)) if sc.as_dict else flat
    return dx, dh0, dc0, dweights


_STACK_DOC = """
    x: (T, B, D) (or (B, T, D) with ``batch_first``), or (T, D) unbatched; {states}:
    (num_layers * num_directions, B, H) ((num_layers * num_directions, H) unbatched) or None; ``weights``: PyTorch's parameters, either a list in
    ``nn.{cls}``'s flat order (for each layer, forward then reverse direction:
    w_ih, w_hh[, b_ih, b_hh]) or a dict keyed by PyTorch's names ('weight_ih_l0',
    'weight_hh_l0_reverse', 'bias_ih_l1', ...). Layer k > 0 takes the concatenated
    directions of layer k-1 (input size num_directions * H). The reverse direction
    reverses each sequence within its own length. No dropout between layers.
"""


def lstm_stack(x, h0, c0, weights, num_layers=1, bidirectional=False, batch_first=False, lengths=None, *,
               return_cache=False):
    """Stacked / bidirectional LSTM like ``torch.nn.LSTM``.
    {doc}
    Returns ``(y, h_n, c_n)``: y (T, B, num_directions * H), h_n and c_n (num_layers *
    num_directions, B, H); with ``return_cache=True`` also the cache for
    :func:`lstm_stack_backward`.
    """
    y, h_n, c_n, sc = _stack_forward("lstm", "lstm_stack", x, h0, c0, weights, num_layers, bidirectional,
                                     batch_first, lengths, return_cache)
    return (y, h_n, c_n, sc) if return_cache else (y, h_n, c_n)


def lstm_stack_backward(dy, dh_n, dc_n, cache, *, need_dx=True):
    """Gradients of :func:`lstm_stack`: ``(dx, dh0, dc0, dweights)``, dweights in the
    form the weights were given (list or dict). ``need_dx=False`` skips the input
    gradient of the first layer and returns None for dx."""
    return _stack_backward("lstm_stack_backward", "lstm", dy, dh_n, dc_n, cache, need_dx)


def gru_stack(x, h0, weights, num_layers=1, bidirectional=False, batch_first=False, lengths=None, *,
              return_cache=False):
    """Stacked / bidirectional GRU like ``torch.nn.GRU``.
    {doc}
    Returns ``(y, h_n)`` (plus the cache with ``return_cache=True``).
    """
    y, h_n, _, sc = _stack_forward("gru", "gru_stack", x, h0, None, weights, num_layers, bidirectional,
                                   batch_first, lengths, return_cache)
    return (y, h_n, sc) if return_cache else (y, h_n)


def gru_stack_backward(dy, dh_n, cache, *, need_dx=True):
    """Gradients of :func:`gru_stack`: ``(dx, dh0, dweights)`` (dx None with
    ``need_dx=False``, as in :func:`lstm_stack_backward`)."""
    dx, dh0, _, dw = _stack_backward("gru_stack_backward", "gru", dy, dh_n, None, cache, need_dx)
    return dx, dh0, dw


def rnn_stack(x, h0, weights, num_layers=1, bidirectional=False, nonlinearity="tanh", batch_first=False,
              lengths=None, *, return_cache=False):
    """Stacked / bidirectional Elman RNN like ``torch.nn.RNN``.
    {doc}
    Returns ``(y, h_n)`` (plus the cache with ``return_cache=True``).
    """
    kind = _kind(nonlinearity, "rnn_stack")
    y, h_n, _, sc = _stack_forward(kind, "rnn_stack", x, h0, None, weights, num_layers, bidirectional,
                                   batch_first, lengths, return_cache)
    return (y, h_n, sc) if return_cache else (y, h_n)


def rnn_stack_backward(dy, dh_n, cache, *, need_dx=True):
    """Gradients of :func:`rnn_stack`: ``(dx, dh0, dweights)`` (dx None with
    ``need_dx=False``, as in :func:`lstm_stack_backward`)."""
    dx, dh0, _, dw = _stack_backward("rnn_stack_backward", "rnn", dy, dh_n, None, cache, need_dx)
    return dx, dh0, dw


for _f, _states, _cls in ((lstm_stack, "h0, c0", "LSTM"), (gru_stack, "h0", "GRU"), (rnn_stack, "h0", "RNN")):
    _f.__doc__ = _f.__doc__.replace("{doc}", _STACK_DOC.format(states=_states, cls=_cls))
del _f, _states, _cls
