"""Embedding and recurrent modules (``torch.nn`` names, arguments, parameter names, shapes
and initialisations) on the fused Rust kernels of :mod:`oxinet.ops`.

- :class:`Embedding`: weight (num_embeddings, embedding_dim) ~ N(0, 1), padding row zeroed.
- :class:`RNN`, :class:`GRU`, :class:`LSTM`: parameters ``weight_ih_l{k}[_reverse]``
  (G*H, D_in), ``weight_hh_l{k}[_reverse]`` (G*H, H), ``bias_ih_l{k}...``, ``bias_hh_l{k}...``
  (G*H,) with G = 1, 3, 4, all ~ U(-1/sqrt(H), 1/sqrt(H)). ``forward(input, hx=None,
  lengths=None)`` returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for LSTM).
  ``lengths`` (B,) gives each sequence's true length in a padded batch: outputs past it are
  zero and h_n / c_n are taken at each sequence's own last step (what PyTorch gives for a
  packed sequence). Dropout between layers (training only) splits the fused stack into
  one kernel call per layer.
- :class:`RNNCell`, :class:`GRUCell`, :class:`LSTMCell` on the single-step kernels.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet.nn import _seq_fn as QF
from oxinet.nn import init
from oxinet.nn.module import Module
from oxinet.nn.parameter import Parameter
from oxinet.tensor import Tensor, _resolve_dtype, get_default_dtype

__all__ = ["Embedding", "RNNBase", "RNN", "GRU", "LSTM", "RNNCellBase", "RNNCell", "GRUCell", "LSTMCell"]


def _dtype(dtype):
    d = _resolve_dtype(dtype, op="layer")
    return get_default_dtype() if d is None else d


class Embedding(Module):
    """Lookup table: integer indices of any shape -> their rows of ``weight``.

    weight (num_embeddings, embedding_dim) starts as N(0, 1) with the ``padding_idx`` row
    zero (PyTorch); that row gets no gradient. ``max_norm`` renormalises looked-up rows in
    place; ``_weight`` gives an initial table."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: 'padding_idx' {padding_idx} must be within num_embeddings "
                                 f"{num_embeddings}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), _dtype(dtype)),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = _weight._data if isinstance(_weight, Tensor) else np.asarray(_weight)
            if w.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: '_weight' has shape {w.shape}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            d = w.dtype if w.dtype.kind == "f" else _dtype(dtype)
            self.weight = Parameter(np.array(w, dtype=d), requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, input):
        return QF.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                            self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding holding a copy of the 2-D ``embeddings``; ``freeze`` (default) sets
        ``weight.requires_grad = False``."""
        e = embeddings._data if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        if e.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: 'embeddings' must be 2-D, got shape {e.shape}")
        return cls(e.shape[0], e.shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=e, _freeze=freeze)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s


_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        cls = type(self).__name__
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(f"{cls}: 'dropout' should be a number in [0, 1], got {dropout!r}")
        if hidden_size <= 0:
            raise ValueError(f"{cls}: 'hidden_size' must be positive, got {hidden_size}")
        if num_layers <= 0:
            raise ValueError(f"{cls}: 'num_layers' must be positive, got {num_layers}")
        if proj_size:
            raise ValueError(f"{cls}: 'proj_size' is not supported")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, 0
        dirs = 2 if bidirectional else 1
        g = _GATES[mode] * hidden_size
        d = _dtype(dtype)
        self._flat_weights_names = []
        for k in range(num_layers):
            d_in = input_size if k == 0 else hidden_size * dirs
            for sfx in ("", "_reverse")[:dirs]:
                shapes = [(f"weight_ih_l{k}{sfx}", (g, d_in)), (f"weight_hh_l{k}{sfx}", (g, hidden_size))]
                if bias:
                    shapes += [(f"bias_ih_l{k}{sfx}", (g,)), (f"bias_hh_l{k}{sfx}", (g,))]
                for name, shape in shapes:
                    self.register_parameter(name, Parameter(np.empty(shape, d)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        per = 4 if self.bias else 2
        w = self._flat_weights
        return [w[i:i + per] for i in range(0, len(w), per)]

    def _nonlinearity(self):
        return "tanh"

    def _split_hx(self, hx):
        return hx, None

    def forward(self, input, hx=None, lengths=None):
        """input: (T, B, D) / (B, T, D) with batch_first / (T, D) unbatched, or a
        :class:`oxinet.nn.utils.rnn.PackedSequence` (then the output is one too)."""
        cls = type(self).__name__
        from oxinet.nn.utils.rnn import PackedSequence

        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError(f"{cls}: pass 'lengths' or a PackedSequence, not both")
            if input.batch_first != self.batch_first:
                raise ValueError(f"{cls}: the PackedSequence was packed with batch_first={input.batch_first} "
                                 f"but the module has batch_first={self.batch_first}")
            lengths, ps = input.lengths, input
            input = input.data
        x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
        if x.ndim not in (2, 3):
            raise ValueError(f"{cls}: 'input' must be 2-D (unbatched) or 3-D, got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{cls}: 'input' has shape {tuple(x.shape)} but input_size is {self.input_size}")
        unbatched = x.ndim == 2
        h0, c0 = self._split_hx(hx)
        if unbatched:
            x = x.unsqueeze(0 if self.batch_first else 1)
            h0 = None if h0 is None else h0.unsqueeze(1)
            c0 = None if c0 is None else c0.unsqueeze(1)
        dirs = 2 if self.bidirectional else 1
        mode = "RNN" if self.mode.startswith("RNN") else self.mode
        nl = self._nonlinearity()
        weights = self._flat_weights
        if self.dropout == 0.0 or not self.training or self.num_layers == 1:
            res = QF.rnn_stack(mode, x, h0, c0, weights, self.num_layers, self.bidirectional, self.batch_first,
                               lengths, nl)
        else:
            from oxinet.nn.functional import dropout
            from oxinet.tensor import cat

            per = len(weights) // self.num_layers
            hs, cs = [], []
            out = x
            for k in range(self.num_layers):
                if k > 0:
                    out = dropout(out, self.dropout, True)
                sl = slice(k * dirs, (k + 1) * dirs)
                r = QF.rnn_stack(mode, out, None if h0 is None else h0[sl], None if c0 is None else c0[sl],
                                 weights[k * per:(k + 1) * per], 1, self.bidirectional, self.batch_first,
                                 lengths, nl)
                out = r[0]
                hs.append(r[1])
                if mode == "LSTM":
                    cs.append(r[2])
            res = (out, cat(hs, 0)) + ((cat(cs, 0),) if mode == "LSTM" else ())
        out, h_n = res[0], res[1]
        c_n = res[2] if mode == "LSTM" else None
        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
            h_n = h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        if packed:
            out = PackedSequence(out, ps.lengths, ps.batch_first)
        return (out, (h_n, c_n)) if mode == "LSTM" else (out, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act 'tanh' or 'relu'.
    input (T, B, D) (or (B, T, D) with batch_first, or unbatched (T, D)); hx (L*dirs, B, H)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: 'nonlinearity' must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, dtype=dtype)

    def _nonlinearity(self):
        return self.nonlinearity


class GRU(RNNBase):
    """GRU with PyTorch's gates r, z, n (weight_ih (3H, D), reset applied to W_hn h + b_hn)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype)


class LSTM(RNNBase):
    """LSTM with PyTorch's gates i, f, g, o (weight_ih (4H, D)); forward(input, (h0, c0))
    returns (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype=dtype)

    def _split_hx(self, hx):
        if hx is None:
            return None, None
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError("LSTM: 'hx' must be a tuple (h_0, c_0)")
        return hx[0], hx[1]


class RNNCellBase(Module):
    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        d = _dtype(dtype)
        self.weight_ih = Parameter(np.empty((num_chunks * hidden_size, input_size), d))
        self.weight_hh = Parameter(np.empty((num_chunks * hidden_size, hidden_size), d))
        if bias:
            self.bias_ih = Parameter(np.empty((num_chunks * hidden_size,), d))
            self.bias_hh = Parameter(np.empty((num_chunks * hidden_size,), d))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s


class RNNCell(RNNCellBase):
    """One Elman step: input (B, D) or (D,), hx (B, H) or None -> h' (B, H)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: 'nonlinearity' must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return QF.rnn_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)


class GRUCell(RNNCellBase):
    """One GRU step: input (B, D) or (D,), hx (B, H) or None -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, dtype=dtype)

    def forward(self, input, hx=None):
        return QF.gru_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTMCell(RNNCellBase):
    """One LSTM step: forward(input, (h, c) or None) -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, dtype=dtype)

    def forward(self, input, hx=None):
        h, c = (None, None) if hx is None else hx
        return QF.lstm_cell(input, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
