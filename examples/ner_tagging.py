"""Named-entity-style tagging with a bidirectional LSTM (many-to-many, T_x = T_y; INVENTORY
F51, S54) on a generated task: every token is tagged O (0), PER (1, a person's name) or
LOC (2, a place).

Sentences come from templates such as "<per> and <per> invented a new spell" or
"yesterday <per> met <per> in <loc>", with name-like words from
:func:`oxinet.data.make_words`. Test sentences use names and places never seen in
training (they become ``<unk>``), so the tagger must read the context on both sides: the
same unknown word is a person after "met" and a place after "in", and a sentence-initial
one is a place in "<x> is a lovely city" but a person in "<x> is a kind person" (only the
backward direction sees that in time). Reports token accuracy
and entity F1 (precision/recall over PER and LOC tokens) for the bidirectional model and a
one-directional baseline.

Run: ``python examples/ner_tagging.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from oxinet.data import make_words  # noqa: E402
from oxinet.text import build_vocab, encode_sequences, pad_sequences  # noqa: E402
from _textutil import batches, log  # noqa: E402

O, PER, LOC = 0, 1, 2
TEMPLATES = (
    "P and P invented a new spell",
    "yesterday P met P in L",
    "P travelled to L with P",
    "the people of L admire P",
    "P said that L is beautiful",
    "we visited L and L last summer",
    "in L P and P found a dragon",
    "P wrote a letter to P from L",
    "a train from L to L was late",
    "P lives in L near P",
    # the type of a sentence-initial unknown word is only told by the words after it
    "L is a lovely city",
    "P is a kind person",
    "L and L are big cities",
    "P and P are old friends",
    "L was founded long ago",
    "P was born in L",
)


def make_tagging(n, names, places, seed):
    rng = np.random.default_rng(seed)
    sents, tags = [], []
    for _ in range(n):
        toks, tg = [], []
        for slot in TEMPLATES[rng.integers(len(TEMPLATES))].split():
            if slot == "P":
                k = 1 + int(rng.random() < 0.5)  # first name, sometimes with a surname
                toks += [names[rng.integers(len(names))] for _ in range(k)]
                tg += [PER] * k
            elif slot == "L":
                toks.append(places[rng.integers(len(places))])
                tg.append(LOC)
            else:
                toks.append(slot)
                tg.append(O)
        sents.append(" ".join(toks))
        tags.append(tg)
    return sents, tags


class Tagger(nn.Module):
    def __init__(self, vocab_size, dim, hidden, bidirectional=True, n_tags=3):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), n_tags)

    def forward(self, x, lengths):
        out, _ = self.rnn(self.emb(ox.tensor(x)), lengths=lengths)
        return self.fc(out)


def entity_f1(pred, gold):
    tp = int(((pred == gold) & (gold != O)).sum())
    fp = int(((pred != gold) & (pred != O)).sum())
    fn = int(((pred != gold) & (gold != O)).sum())
    p = tp / max(tp + fp, 1)
    r = tp / max(tp + fn, 1)
    return 2 * p * r / max(p + r, 1e-12)


def main(n_train=3000, n_test=500, dim=32, hidden=48, epochs=8, batch_size=64, lr=0.01, directions=(True, False),
         seed=0, verbose=True):
    ox.manual_seed(seed)
    names = make_words(400, kind="name", seed=seed + 1)
    places = make_words(300, kind="dino", seed=seed + 2)
    tr_s, tr_t = make_tagging(n_train, names[:300], places[:200], seed)
    te_s, te_t = make_tagging(n_test, names[300:], places[200:], seed + 1)  # unseen names and places
    vocab = build_vocab(tr_s, level="word", min_freq=3)  # rare training names become <unk> too
    x, lx = pad_sequences(encode_sequences(vocab, tr_s, add_eos=False))
    y, _ = pad_sequences(tr_t, value=-100)
    xt, lxt = pad_sequences(encode_sequences(vocab, te_s, add_eos=False))
    yt, _ = pad_sequences(te_t, value=-100)
    rng = np.random.default_rng(seed)
    results = {}
    for bi in directions:
        ox.manual_seed(seed)
        model = Tagger(len(vocab), dim, hidden, bi)
        opt = ox.optim.Adam(model.parameters(), lr=lr)
        for ep in range(epochs):
            model.train()
            for idx in batches(len(x), batch_size, rng):
                t = int(lx[idx].max())
                logits = model(x[idx, :t], lx[idx])
                loss = F.cross_entropy(logits.reshape(-1, 3), y[idx, :t].reshape(-1), ignore_index=-100)
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with ox.no_grad():
            pred = model(xt, lxt).numpy().argmax(-1)
        mask = yt != -100
        acc = float((pred[mask] == yt[mask]).mean())
        f1 = entity_f1(pred[mask], yt[mask])
        name = "bidirectional" if bi else "forward-only"
        results[name] = {"token_accuracy": acc, "entity_f1": f1}
        log(verbose, f"{name:14s}: token accuracy {acc:.3f}, entity F1 {f1:.3f} (unseen names and places)")
        if bi:
            for s, p in list(zip(te_s, pred))[:3]:
                tagged = [f"{w}/{'O PER LOC'.split()[k]}" for w, k in zip(s.split(), p)]
                log(verbose, "   " + " ".join(tagged))
    return results


if __name__ == "__main__":
    main()
