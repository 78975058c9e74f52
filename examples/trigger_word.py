"""Trigger-word detection on synthetic audio (INVENTORY 1(k) "trigger word", S68; the model
follows the course's exercise outline: spectrogram -> 1-D convolution -> GRU -> per-frame
sigmoid).

Each 1 s clip (8 kHz) is background noise plus a few "words": short sequences of 2-3
harmonic tones with random pitches. Some clips also hold the trigger: a fixed rising chirp
followed by a steady tone (with small random changes of pitch and speed). The label of an
output frame is 1 during the ``label_frames`` frames right after a trigger ends (the
label-after-trigger scheme), else 0. The spectrogram (log power of a Hann-windowed STFT)
is computed in NumPy. Frame precision/recall/F1 are reported on held-out clips.

Run: ``python examples/trigger_word.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from _textutil import batches, log  # noqa: E402

SR = 8000


def tone(freqs, dur, rng, harmonics=3):
    """A voiced-like sound: a pitch track ``freqs`` (Hz, per sample) with a few harmonics,
    under a smooth envelope."""
    n = int(dur * SR)
    f = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(freqs)), freqs)
    phase = 2 * np.pi * np.cumsum(f) / SR
    s = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    return s * np.hanning(n) * rng.uniform(0.5, 1.0)


def trigger(rng):
    """The target pattern: a chirp 400 -> 1200 Hz, then a 900 Hz tone (jittered)."""
    a = rng.uniform(0.95, 1.05)
    speed = rng.uniform(0.9, 1.1)
    return np.concatenate([tone([400 * a, 1200 * a], 0.12 * speed, rng), tone([900 * a, 900 * a], 0.1 * speed, rng)])


def distractor(rng):
    parts = []
    for _ in range(rng.integers(2, 4)):
        f0 = rng.uniform(250, 1500)
        parts.append(tone([f0, f0 * rng.uniform(0.8, 1.25)], rng.uniform(0.05, 0.12), rng))
    return np.concatenate(parts)


def spectrogram(x, n_fft=256, hop=128):
    """(frames, n_fft // 2 + 1) log power of a Hann-windowed STFT."""
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(n_fft)
    return np.log(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-6)


def make_clips(n, label_frames=6, seed=0, n_fft=256, hop=128):
    rng = np.random.default_rng(seed)
    length = SR
    specs, labels = [], []
    n_frames = 1 + (length - n_fft) // hop
    for _ in range(n):
        clip = rng.normal(0, rng.uniform(0.05, 0.3), size=length)
        y = np.zeros(n_frames, np.float32)
        placed = []
        items = [("d", distractor(rng)) for _ in range(rng.integers(0, 3))]
        if rng.random() < 0.6:
            items += [("t", trigger(rng)) for _ in range(rng.integers(1, 3))]
        for kind, s in items:
            for _ in range(20):  # non-overlapping placement
                start = int(rng.integers(0, length - len(s)))
                if all(start + len(s) < a or start > b for a, b in placed):
                    break
            else:
                continue
            placed.append((start, start + len(s)))
            clip[start:start + len(s)] += s
            if kind == "t":
                end = (start + len(s) - n_fft) // hop + 1
                y[end:end + label_frames] = 1
        specs.append(spectrogram(clip, n_fft, hop))
        labels.append(y)
    x = np.stack(specs).astype(np.float32)
    return x, np.stack(labels)


class TriggerModel(nn.Module):
    def __init__(self, n_freq, channels=48, hidden=48):
        super().__init__()
        self.conv = nn.Conv1d(n_freq, channels, kernel_size=5, padding=2)
        self.bn = nn.BatchNorm1d(channels)
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, spec):
        h = self.bn(self.conv(ox.tensor(spec).permute(0, 2, 1))).relu()  # (N, C, T)
        out, _ = self.gru(h.permute(0, 2, 1))
        return self.fc(out).squeeze(-1)  # logits per frame (N, T)


def frame_f1(pred, y):
    tp = float((pred * y).sum())
    p = tp / max(pred.sum(), 1)
    r = tp / max(y.sum(), 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def main(n_train=1200, n_test=300, epochs=12, batch_size=32, lr=0.005, label_frames=6, seed=0, verbose=True):
    ox.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = make_clips(n_train, label_frames, seed)
    xt, yt = make_clips(n_test, label_frames, seed + 1)
    mu, sd = x.mean((0, 1)), x.std((0, 1)) + 1e-6
    x, xt = (x - mu) / sd, (xt - mu) / sd
    log(verbose, f"{n_train} clips, spectrogram {x.shape[1]} frames x {x.shape[2]} bins; "
                 f"{y.mean():.3f} of the frames are positive")
    model = TriggerModel(x.shape[2])
    opt = ox.optim.Adam(model.parameters(), lr=lr)
    pos_weight = ox.tensor(np.float32(3.0))
    for ep in range(epochs):
        model.train()
        tot, nb = 0.0, 0
        for idx in batches(n_train, batch_size, rng):
            loss = F.binary_cross_entropy_with_logits(model(x[idx]), ox.tensor(y[idx]), pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.item())
            nb += 1
        model.eval()
        with ox.no_grad():
            pred = (model(xt).numpy() > 0).astype(np.float32)
        p, r, f1 = frame_f1(pred, yt)
        log(verbose, f"epoch {ep + 1}/{epochs}: loss {tot / nb:.4f}, held-out frame precision {p:.3f} "
                     f"recall {r:.3f} F1 {f1:.3f}")
    return {"precision": p, "recall": r, "f1": f1}


if __name__ == "__main__":
    main()
