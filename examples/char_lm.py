"""Character-level language model (INVENTORY F47, F52, F53; S57): an RNN and an LSTM learn
the bundled name-like word corpus one character at a time, with gradient clipping, then
sample new words and report perplexity on held-out words.

Input at step t is the previous character (one-hot, as in the course; ``<eos>`` starts a
word), the target the current one; each word ends with ``<eos>``. Perplexity is
exp(mean negative log-likelihood per character, ``<eos>`` included); the unigram baseline
(character frequencies alone) is printed next to it.

Run: ``python examples/char_lm.py`` (both cells, a couple of minutes on 2 cores).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from oxinet.data import make_words, one_hot  # noqa: E402
from oxinet.text import build_vocab, encode_sequences, pad_sequences, sample_sequence  # noqa: E402
from _textutil import batches, log  # noqa: E402


class CharLM(nn.Module):
    def __init__(self, vocab_size, hidden, cell="lstm"):
        super().__init__()
        self.vocab_size = vocab_size
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(vocab_size, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab_size)

    def forward(self, tokens, state=None):
        x = ox.tensor(one_hot(np.asarray(tokens), self.vocab_size))
        out, state = self.rnn(x, state)
        return self.fc(out), state


def make_data(words, vocab):
    seqs = encode_sequences(vocab, words, add_eos=True)
    eos = vocab.eos_index
    x, _ = pad_sequences([[eos] + s[:-1] for s in seqs], value=vocab.pad_index)
    y, _ = pad_sequences(seqs, value=vocab.pad_index)
    return x, y


def perplexity(model, x, y, pad, batch_size=256):
    nll, count = 0.0, 0
    with ox.no_grad():
        for s in range(0, len(x), batch_size):
            logits, _ = model(x[s:s + batch_size])
            v = logits.shape[-1]
            loss = F.cross_entropy(logits.reshape(-1, v), y[s:s + batch_size].reshape(-1), ignore_index=pad,
                                   reduction="sum")
            nll += float(loss.item())
            count += int((y[s:s + batch_size] != pad).sum())
    return float(np.exp(nll / count))


def unigram_perplexity(y_train, y_val, v, pad):
    counts = np.bincount(y_train[y_train != pad], minlength=v) + 1.0
    p = counts / counts.sum()
    t = y_val[y_val != pad]
    return float(np.exp(-np.log(p[t]).mean()))


def train_one(cell, words_train, words_val, vocab, hidden, epochs, batch_size, lr, clip, seed, verbose):
    ox.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xt, yt = make_data(words_train, vocab)
    xv, yv = make_data(words_val, vocab)
    v, pad = len(vocab), vocab.pad_index
    model = CharLM(v, hidden, cell)
    opt = ox.optim.Adam(model.parameters(), lr=lr)
    history = []
    for ep in range(epochs):
        model.train()
        for idx in batches(len(xt), batch_size, rng):
            # trim the batch to its longest word
            tlen = int((yt[idx] != pad).sum(1).max())
            logits, _ = model(xt[idx, :tlen])
            loss = F.cross_entropy(logits.reshape(-1, v), yt[idx, :tlen].reshape(-1), ignore_index=pad)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_value_(model.parameters(), clip)  # the course's element-wise clipping (F53)
            opt.step()
        model.eval()
        ppl = perplexity(model, xv, yv, pad)
        history.append(ppl)
        log(verbose, f"[{cell}] epoch {ep + 1}/{epochs}: validation perplexity {ppl:.3f}")
    return model, history


def sample_words(model, vocab, n, temperature, seed, max_len=30):
    def step(state, tokens):
        with ox.no_grad():
            logits, state = model(tokens[:, None], state)
        return logits.numpy()[:, 0], state

    eos = vocab.eos_index
    seqs = sample_sequence(step, None, np.full(n, eos), eos, max_len=max_len, temperature=temperature,
                           seed=seed, forbid=vocab.pad_index)
    return ["".join(vocab.itos[i] for i in s if i != eos) for s in seqs]


def main(cells=("rnn", "lstm"), n_words=3000, hidden=96, epochs=12, batch_size=64, lr=0.01, clip=5.0,
         n_samples=8, temperature=0.8, seed=0, verbose=True):
    words = make_words(n_words, kind="dino", seed=seed)
    n_val = max(1, len(words) // 10)
    train_w, val_w = words[n_val:], words[:n_val]
    vocab = build_vocab(words, level="char", unk=False)
    _, yt = make_data(train_w, vocab)
    _, yv = make_data(val_w, vocab)
    base = unigram_perplexity(yt, yv, len(vocab), vocab.pad_index)
    log(verbose, f"{len(train_w)} training words, {len(val_w)} held out, {len(vocab)} symbols; "
                 f"unigram perplexity {base:.3f}")
    results = {"unigram_perplexity": base}
    for cell in cells:
        model, hist = train_one(cell, train_w, val_w, vocab, hidden, epochs, batch_size, lr, clip, seed, verbose)
        samples = sample_words(model, vocab, n_samples, temperature, seed)
        novel = [w for w in samples if w and w not in set(words)]
        log(verbose, f"[{cell}] sampled: {', '.join(samples)}")
        results[cell] = {"perplexity": hist[-1], "history": hist, "samples": samples,
                         "novel_fraction": len(novel) / max(1, len(samples))}
    return results


if __name__ == "__main__":
    main()
