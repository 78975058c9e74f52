"""Word-level language model with an embedding layer (INVENTORY F52, S55): an LSTM predicts
the next word of the generated review sentences; each sentence ends with ``<eos>`` and
words seen fewer than ``min_freq`` times become ``<unk>``.

Reports held-out perplexity (against the unigram baseline), samples new sentences
(temperature and top-k, ``<unk>`` never drawn, stop at ``<eos>``) and compares sentence
probabilities as the course does ("pear salad" vs "pair salad"): real held-out sentences
against the same words shuffled.

Run: ``python examples/word_lm.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from oxinet.data import make_sentiment  # noqa: E402
from oxinet.text import build_vocab, encode_sequences, pad_sequences, sample_sequence  # noqa: E402
from _textutil import batches, log  # noqa: E402


class WordLM(nn.Module):
    def __init__(self, vocab_size, dim, hidden):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab_size)

    def forward(self, tokens, state=None):
        out, state = self.lstm(self.emb(ox.tensor(np.asarray(tokens))), state)
        return self.fc(out), state


def sentence_log_probs(model, x, y, pad):
    """Summed log P of each target row (natural log)."""
    with ox.no_grad():
        logits, _ = model(x)
        lp = logits.log_softmax(-1).numpy()
    picked = np.take_along_axis(lp, np.maximum(y, 0)[..., None], -1)[..., 0]
    return (picked * (y != pad)).sum(1)


def main(n_sentences=4000, dim=32, hidden=96, epochs=10, batch_size=64, lr=0.01, min_freq=2, n_samples=6,
         temperature=0.8, top_k=10, seed=0, verbose=True):
    ox.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sents, _ = make_sentiment(n_sentences, seed=seed)
    n_val = len(sents) // 10
    train, val = sents[n_val:], sents[:n_val]
    vocab = build_vocab(train, level="word", min_freq=min_freq)
    eos, pad = vocab.eos_index, vocab.pad_index

    def data(ss):
        seqs = encode_sequences(vocab, ss, add_eos=True)
        x, _ = pad_sequences([[eos] + s[:-1] for s in seqs], value=pad)
        y, _ = pad_sequences(seqs, value=pad)
        return x, y

    x, y = data(train)
    xv, yv = data(val)
    v = len(vocab)
    counts = np.bincount(y[y != pad], minlength=v) + 1.0
    unigram = float(np.exp(-np.log((counts / counts.sum())[yv[yv != pad]]).mean()))
    model = WordLM(v, dim, hidden)
    opt = ox.optim.Adam(model.parameters(), lr=lr)
    for ep in range(epochs):
        model.train()
        for idx in batches(len(x), batch_size, rng):
            t = int((y[idx] != pad).sum(1).max())
            logits, _ = model(x[idx, :t])
            loss = F.cross_entropy(logits.reshape(-1, v), y[idx, :t].reshape(-1), ignore_index=pad)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        model.eval()
        lp = sentence_log_probs(model, xv, yv, pad)
        ppl = float(np.exp(-lp.sum() / (yv != pad).sum()))
        log(verbose, f"epoch {ep + 1}/{epochs}: validation perplexity {ppl:.3f} (unigram {unigram:.2f})")

    def step(state, tokens):
        with ox.no_grad():
            logits, state = model(tokens[:, None], state)
        return logits.numpy()[:, 0], state

    samples = sample_sequence(step, None, np.full(n_samples, eos), eos, max_len=20, temperature=temperature,
                              top_k=top_k, seed=seed, forbid=[pad, vocab.unk_index])
    texts = [" ".join(vocab.itos[i] for i in s if i != eos) for s in samples]
    for t in texts:
        log(verbose, f"  sampled: {t}")
    # real sentences vs their shuffled words (same words, so same unigram probability)
    shuf = [" ".join(rng.permutation(s.split())) for s in val]
    xs, ys = data(shuf)
    lp_real, lp_shuf = sentence_log_probs(model, xv, yv, pad), sentence_log_probs(model, xs, ys, pad)
    diff = [a > b for a, b, s, t in zip(lp_real, lp_shuf, val, shuf) if s != t]
    log(verbose, f"a real sentence is more probable than its shuffled words in {np.mean(diff):.3f} of cases; "
                 f"e.g. log P({val[0]!r}) = {lp_real[0]:.2f} vs log P({shuf[0]!r}) = {lp_shuf[0]:.2f}")
    return {"perplexity": ppl, "unigram_perplexity": unigram, "samples": texts,
            "real_beats_shuffled": float(np.mean(diff))}


if __name__ == "__main__":
    main()
