"""Sentiment classification of the generated review sentences (INVENTORY F60, S61) with the
course's two models:

1. average of the word embeddings -> softmax (ignores word order, so negations such as
   "was not good" fool it), and
2. a many-to-one LSTM over the embeddings, reading the whole sentence (handles negation).

Both learn their embeddings here (optionally initialised from skip-gram vectors trained on
the same sentences, the course's transfer idea, with ``pretrained=True``). Accuracy is
reported on held-out sentences, overall and on the negated ones.

Run: ``python examples/sentiment.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from oxinet.data import NEGATIONS, make_sentiment  # noqa: E402
from oxinet.text import build_vocab, encode_sequences, pad_sequences, train_skipgram  # noqa: E402
from _textutil import batches, log  # noqa: E402


class AverageEmbedding(nn.Module):
    def __init__(self, vocab_size, dim, n_classes=2, weights=None):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0, _weight=weights)
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, x, lengths):
        e = self.emb(ox.tensor(x)).sum(1) / ox.tensor(lengths[:, None].astype(np.float32))
        return self.fc(e)


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size, dim, hidden, n_classes=2, weights=None):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0, _weight=weights)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, x, lengths):
        _, (h, _) = self.lstm(self.emb(ox.tensor(x)), lengths=lengths)
        return self.fc(h[-1])  # the state after each sentence's last word


def is_negated(s):
    return any(w in NEGATIONS or w.endswith("n't") for w in s.split())


def fit(model, x, lengths, y, epochs, batch_size, lr, seed):
    rng = np.random.default_rng(seed)
    opt = ox.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        for idx in batches(len(x), batch_size, rng):
            t = int(lengths[idx].max())
            loss = F.cross_entropy(model(x[idx, :t], lengths[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def accuracy(model, x, lengths, y):
    with ox.no_grad():
        pred = model(x, lengths).numpy().argmax(-1)
    return float((pred == y).mean()), pred


def main(n_sentences=3000, dim=32, hidden=32, epochs=15, batch_size=64, lr=0.01, pretrained=False, seed=0,
         verbose=True):
    ox.manual_seed(seed)
    sents, labels = make_sentiment(n_sentences, seed=seed)
    n_test = len(sents) // 5
    vocab = build_vocab(sents, level="word")
    x, lengths = pad_sequences(encode_sequences(vocab, sents, add_eos=False), value=vocab.pad_index)
    tr, te = slice(n_test, None), slice(0, n_test)
    neg = np.array([is_negated(s) for s in sents])
    weights = None
    if pretrained:
        sg = train_skipgram([s for s in encode_sequences(vocab, sents[n_test:], add_eos=False)], len(vocab),
                            dim=dim, window=3, epochs=5, seed=seed)
        weights = sg.vectors.astype(np.float32)
        weights[vocab.pad_index] = 0
    results = {}
    for name, model in (("average", AverageEmbedding(len(vocab), dim, weights=weights)),
                        ("lstm", LSTMClassifier(len(vocab), dim, hidden, weights=weights))):
        fit(model, x[tr], lengths[tr], labels[tr], epochs, batch_size, lr, seed)
        acc, pred = accuracy(model, x[te], lengths[te], labels[te])
        neg_acc = float((pred == labels[te])[neg[te]].mean())
        results[name] = {"accuracy": acc, "negated_accuracy": neg_acc}
        log(verbose, f"{name:8s}: held-out accuracy {acc:.3f}, on negated sentences {neg_acc:.3f}")
    return results


if __name__ == "__main__":
    main()
