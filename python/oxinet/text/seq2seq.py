"""Sequence-to-sequence model with the course's attention (INVENTORY F63): a bidirectional
LSTM encoder and an LSTM-cell decoder that attends over the encoder states at every step.

    e<t,t'> = v . tanh(W_s s<t-1> + W_a a<t'> + b)     (the small dense net over [s<t-1>; a<t'>])
    alpha<t,t'> = softmax over t' (padding masked);   c<t> = sum_t' alpha<t,t'> a<t'>
    s<t>, m<t> = LSTMCell([c<t>; embed(y<t-1>)], (s<t-1>, m<t-1>));   logits = W_y s<t> + b_y

``feed_previous=False`` zeroes the previous-output input (the decoder then sees only the
context, as in the course's date exercise). ``encode`` returns the decoder state as a dict whose arrays all have the batch on axis 0,
so :func:`oxinet.text.beam_search` can reorder it; ``step`` is one decoder step.
"""

from __future__ import annotations

import numpy as np

import oxinet as ox
from oxinet import nn
from oxinet.text.vocab import sequence_mask

__all__ = ["AttentionNMT"]


class AttentionNMT(nn.Module):
    """Encoder-decoder with attention; ``forward(x, lengths, y_in)`` gives teacher-forced
    logits (B, Ty, tgt_vocab) for source ids ``x`` (B, Tx) with ``lengths`` and decoder inputs
    ``y_in`` (B, Ty) (``<bos>`` then the target shifted right)."""

    def __init__(self, src_vocab, tgt_vocab, emb=32, enc_hidden=64, dec_hidden=128, energy_hidden=16,
                 feed_previous=True):
        super().__init__()
        self.src_emb = nn.Embedding(src_vocab, emb, padding_idx=0)
        self.encoder = nn.LSTM(emb, enc_hidden, batch_first=True, bidirectional=True)
        self.tgt_emb = nn.Embedding(tgt_vocab, emb)
        a_dim = 2 * enc_hidden
        # e<t,t'> = v . tanh(W_s s<t-1> + W_a a<t'> + b): the dense net over [s; a], split in two
        self.energy_s = nn.Linear(dec_hidden, energy_hidden, bias=False)
        self.energy_a = nn.Linear(a_dim, energy_hidden)
        self.energy_v = nn.Linear(energy_hidden, 1, bias=False)
        self.cell = nn.LSTMCell(a_dim + emb, dec_hidden)
        self.out = nn.Linear(dec_hidden, tgt_vocab)
        self.dec_hidden = dec_hidden
        self.feed_previous = feed_previous

    def encode(self, x, lengths):
        a, _ = self.encoder(self.src_emb(ox.tensor(x)), lengths=lengths)
        mask = ox.tensor(~sequence_mask(lengths, x.shape[1]))   # True on padding
        return {"a": a, "pa": self.energy_a(a), "mask": mask,
                "h": ox.zeros(x.shape[0], self.dec_hidden), "c": ox.zeros(x.shape[0], self.dec_hidden)}

    def step(self, state, y_prev):
        """One decoder step: (state, previous tokens (B,)) -> (logits (B, V), state, alpha (B, Tx))."""
        e = self.energy_v((self.energy_s(state["h"]).unsqueeze(1) + state["pa"]).tanh()).squeeze(-1)
        alpha = e.masked_fill(state["mask"], -1e9).softmax(-1)                      # (B, Tx)
        # c<t> = sum_t' alpha<t,t'> a<t'> as a batched (1, Tx) @ (Tx, 2Ha) product: the same
        # sum without the (B, Tx, 2Ha) products (forward) and their reductions (backward)
        context = (alpha.unsqueeze(1) @ state["a"]).squeeze(1)                      # (B, 2Ha)
        prev = self.tgt_emb(ox.tensor(np.asarray(y_prev)))
        if not self.feed_previous:  # the course's date exercise: the decoder sees the context only
            prev = prev * 0.0
        inp = ox.cat([context, prev], -1)
        h, c = self.cell(inp, (state["h"], state["c"]))
        new = dict(state, h=h, c=c)
        return self.out(h), new, alpha

    def forward(self, x, lengths, y_in):
        state = self.encode(x, lengths)
        logits = []
        for t in range(y_in.shape[1]):
            lg, state, _ = self.step(state, y_in[:, t])
            logits.append(lg)
        return ox.stack(logits, 1)
