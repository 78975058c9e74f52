"""One-to-many "music" generation with an LSTM (INVENTORY 1(k) music generation, S58).

The training melodies come from a small generative grammar: a key (one of three major
scales, given as the first token), then notes as a random walk over the scale degrees
(mostly steps of one or two degrees), phrases of 8 notes ending on the key's tonic, and a
final ``<end>``. The LSTM learns it as a language model over note tokens (MIDI pitches);
generation is one-to-many: from the key token alone it samples a whole melody.

Checks on the generated melodies: the fraction of notes in the requested key (a random
pitch generator scores 7/12), the fraction of small melodic steps, and the model's
held-out perplexity against the unigram baseline.

Run: ``python examples/music_lstm.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from oxinet.text import pad_sequences, sample_sequence  # noqa: E402
from _textutil import batches, log  # noqa: E402

PAD, END = 0, 1
KEYS = {"C": 60, "G": 67, "F": 65}  # tonic MIDI pitches
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
LOW, HIGH = 55, 84  # pitch range -> tokens 2 + (pitch - LOW); key tokens after the notes
N_PITCH = HIGH - LOW + 1
KEY_TOKEN = {k: 2 + N_PITCH + i for i, k in enumerate(KEYS)}
VOCAB = 2 + N_PITCH + len(KEYS)


def scale_pitches(key):
    t = KEYS[key]
    ps = sorted({t + o + d for o in (-12, 0, 12) for d in MAJOR})
    return [p for p in ps if LOW <= p <= HIGH]


def make_melodies(n, phrases=(2, 4), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        key = list(KEYS)[rng.integers(len(KEYS))]
        sc = scale_pitches(key)
        pos = sc.index(KEYS[key])
        toks = [KEY_TOKEN[key]]
        for _ in range(rng.integers(*phrases)):
            for k in range(7):
                pos = int(np.clip(pos + rng.choice([-2, -1, 1, 2], p=[0.15, 0.35, 0.35, 0.15]), 0, len(sc) - 1))
                toks.append(2 + sc[pos] - LOW)
            pos = sc.index(KEYS[key])  # the phrase resolves to the tonic
            toks.append(2 + sc[pos] - LOW)
        out.append(toks + [END])
    return out


class MusicLSTM(nn.Module):
    def __init__(self, dim=24, hidden=64):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, VOCAB)

    def forward(self, tokens, state=None):
        out, state = self.lstm(self.emb(ox.tensor(np.asarray(tokens))), state)
        return self.fc(out), state


def melody_stats(melodies, keys):
    in_key, small = [], []
    for m, k in zip(melodies, keys):
        sc = set(p % 12 for p in scale_pitches(k))
        pitches = [LOW + t - 2 for t in m if 2 <= t < 2 + N_PITCH]
        in_key += [p % 12 in sc for p in pitches]
        small += [abs(a - b) <= 4 for a, b in zip(pitches, pitches[1:])]
    return float(np.mean(in_key)) if in_key else 0.0, float(np.mean(small)) if small else 0.0


def main(n_melodies=1500, dim=24, hidden=64, epochs=10, batch_size=64, lr=0.01, n_samples=12, temperature=1.0,
         seed=0, verbose=True):
    ox.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mel = make_melodies(n_melodies, seed=seed)
    n_val = len(mel) // 10
    x, _ = pad_sequences([m[:-1] for m in mel], value=PAD)
    y, _ = pad_sequences([m[1:] for m in mel], value=PAD)
    xt, yt, xv, yv = x[n_val:], y[n_val:], x[:n_val], y[:n_val]
    counts = np.bincount(yt[yt != PAD], minlength=VOCAB) + 1.0
    unigram = float(np.exp(-np.log((counts / counts.sum())[yv[yv != PAD]]).mean()))
    model = MusicLSTM(dim, hidden)
    opt = ox.optim.Adam(model.parameters(), lr=lr)
    for ep in range(epochs):
        model.train()
        for idx in batches(len(xt), batch_size, rng):
            logits, _ = model(xt[idx])
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), yt[idx].reshape(-1), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        model.eval()
        with ox.no_grad():
            logits, _ = model(xv)
            nll = F.cross_entropy(logits.reshape(-1, VOCAB), yv.reshape(-1), ignore_index=PAD)
        ppl = float(np.exp(nll.item()))
        log(verbose, f"epoch {ep + 1}/{epochs}: validation perplexity {ppl:.3f} (unigram {unigram:.2f})")

    def step(state, tokens):
        with ox.no_grad():
            logits, state = model(tokens[:, None], state)
        return logits.numpy()[:, 0], state

    keys = [list(KEYS)[i % len(KEYS)] for i in range(n_samples)]
    gen = sample_sequence(step, None, np.array([KEY_TOKEN[k] for k in keys]), END, max_len=40,
                          temperature=temperature, seed=seed, forbid=PAD)
    in_key, small = melody_stats(gen, keys)
    rnd = [list(rng.integers(2, 2 + N_PITCH, size=24)) for _ in keys]
    rnd_in_key, rnd_small = melody_stats(rnd, keys)
    for k, m in list(zip(keys, gen))[:3]:
        log(verbose, f"  key {k}: " + " ".join(str(LOW + t - 2) for t in m if 2 <= t < 2 + N_PITCH))
    log(verbose, f"generated: {in_key:.3f} of the notes in key, {small:.3f} small steps "
                 f"(random pitches: {rnd_in_key:.3f}, {rnd_small:.3f})")
    return {"perplexity": ppl, "unigram_perplexity": unigram, "in_key": in_key, "small_steps": small,
            "random_in_key": rnd_in_key}


if __name__ == "__main__":
    main()
