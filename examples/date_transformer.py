"""The date-translation task of ``date_translation.py`` with a small transformer (INVENTORY
F65, S69): sinusoidal positional encodings added to the character embeddings, an encoder of
self-attention blocks, a decoder with masked (causal) self-attention and encoder-decoder
attention, then a linear layer + softmax over the output characters.

Decoding feeds the growing prefix back into the decoder (greedy, batched) or through
:func:`oxinet.text.beam_search`, whose state holds each hypothesis's prefix.

Run: ``python examples/date_transformer.py`` (about 2 minutes on 2 busy cores; 98.8% greedy
exact match on 500 held-out dates, 98.5% with beam search on the first 200). Pre-norm
blocks and embeddings scaled to the size of the positional code made it learn about four
times faster than post-norm with N(0, 1) embeddings.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from oxinet.data import make_dates  # noqa: E402
from oxinet.text import beam_search, greedy_search, sequence_mask  # noqa: E402
from _textutil import batches, log  # noqa: E402
from date_translation import encode, make_vocabs  # noqa: E402


class DateTransformer(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, d_model=64, nhead=4, layers=2, ff=128, dropout=0.0, norm_first=True):
        super().__init__()
        self.d_model = d_model
        self.src_emb = nn.Embedding(src_vocab, d_model, padding_idx=0)
        self.tgt_emb = nn.Embedding(tgt_vocab, d_model)
        # embeddings ~ N(0, 1/d): after the sqrt(d) scaling they are as large as the positional code
        for e in (self.src_emb, self.tgt_emb):
            nn.init.normal_(e.weight, 0.0, d_model ** -0.5)
            if e.padding_idx is not None:
                e.weight.data[e.padding_idx] = 0
        self.pos = nn.PositionalEncoding(d_model, dropout=dropout, max_len=64, batch_first=True)
        self.core = nn.Transformer(d_model, nhead, layers, layers, ff, dropout, batch_first=True,
                                   norm_first=norm_first)
        self.out = nn.Linear(d_model, tgt_vocab)

    def encode(self, x, lengths):
        pad = ox.tensor(~sequence_mask(lengths, x.shape[1]))
        src = self.pos(self.src_emb(ox.tensor(x)) * math.sqrt(self.d_model))
        return self.core.encoder(src, src_key_padding_mask=pad), pad

    def decode(self, memory, pad, y_in):
        t = y_in.shape[1]
        tgt = self.pos(self.tgt_emb(ox.tensor(y_in)) * math.sqrt(self.d_model))
        causal = nn.Transformer.generate_square_subsequent_mask(t)
        h = self.core.decoder(tgt, memory, tgt_mask=causal, memory_key_padding_mask=pad)
        return self.out(h)

    def forward(self, x, lengths, y_in):
        memory, pad = self.encode(x, lengths)
        return self.decode(memory, pad, y_in)


def _step_fn(model):
    def step(state, tokens):
        prefix = np.concatenate([state["prefix"], tokens[:, None]], 1)
        with ox.no_grad():
            logits = model.decode(state["memory"], state["pad"], prefix)
        return logits[:, -1].log_softmax(-1).numpy(), dict(state, prefix=prefix)

    return step


def _start(model, x, lengths):
    with ox.no_grad():
        memory, pad = model.encode(x, lengths)
    return {"memory": memory, "pad": pad, "prefix": np.zeros((len(x), 0), np.int64)}


def decode_greedy(model, x, lengths, tgt, ty):
    toks, _ = greedy_search(_step_fn(model), _start(model, x, lengths), np.full(len(x), tgt.bos_index),
                            tgt.eos_index, max_len=ty)
    return ["".join(tgt.itos[i] for i in row if i != tgt.eos_index) for row in toks]


def decode_beam(model, x, lengths, tgt, ty, beam_width=3):
    out = []
    for i in range(len(x)):
        h = beam_search(_step_fn(model), _start(model, x[i:i + 1], lengths[i:i + 1]), tgt.bos_index,
                        tgt.eos_index, beam_width=beam_width, max_len=ty)
        out.append("".join(tgt.itos[j] for j in h.tokens))
    return out


def main(n_train=10000, n_test=500, tx=30, epochs=8, batch_size=100, lr=0.002, d_model=64, nhead=4, layers=2,
         ff=128, beam_width=3, n_beam=200, seed=0, verbose=True):
    ox.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pairs = make_dates(n_train + n_test, seed=seed)
    train, test = pairs[:n_train], pairs[n_train:]
    src, tgt = make_vocabs(pairs)
    x, lx, yi, yo = encode(train, src, tgt, tx)
    xt, lxt, _, _ = encode(test, src, tgt, tx)
    ty = yo.shape[1]
    model = DateTransformer(len(src), len(tgt), d_model, nhead, layers, ff)
    opt = ox.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    steps = epochs * math.ceil(n_train / batch_size)
    warm = max(1, steps // 10)
    sched = ox.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.05, 1 - s / steps))
    v = len(tgt)
    for ep in range(epochs):
        model.train()
        tot, nb = 0.0, 0
        for idx in batches(n_train, batch_size, rng):
            t = int(lx[idx].max())
            logits = model(x[idx, :t], lx[idx], yi[idx])
            loss = F.cross_entropy(logits.reshape(-1, v), yo[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += float(loss.item())
            nb += 1
        if ep == 0:
            first_loss = tot / nb
        model.eval()
        k = min(200, n_test)
        acc = np.mean([p == t for p, (_, t) in zip(decode_greedy(model, xt[:k], lxt[:k], tgt, ty), test[:k])])
        log(verbose, f"epoch {ep + 1}/{epochs}: train loss {tot / nb:.4f}, greedy exact match (first {k}) {acc:.3f}")
    greedy = decode_greedy(model, xt, lxt, tgt, ty)
    greedy_acc = float(np.mean([p == t for p, (_, t) in zip(greedy, test)]))
    char_acc = float(np.mean([sum(a == b for a, b in zip(p, t)) / len(t) for p, (_, t) in zip(greedy, test)]))
    nb_ = min(n_beam, n_test)
    beam = decode_beam(model, xt[:nb_], lxt[:nb_], tgt, ty, beam_width)
    beam_acc = float(np.mean([p == t for p, (_, t) in zip(beam, test[:nb_])]))
    log(verbose, f"held-out exact match: greedy {greedy_acc:.4f} ({n_test} dates), beam B={beam_width} "
                 f"{beam_acc:.4f} ({nb_} dates)")
    return {"greedy_accuracy": greedy_acc, "beam_accuracy": beam_acc, "char_accuracy": char_acc,
            "first_loss": first_loss, "last_loss": tot / nb}


if __name__ == "__main__":
    main()
