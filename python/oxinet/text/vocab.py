"""Tokenising helpers on top of :class:`oxinet.data.Vocab`: vocabularies with ``<eos>``
(and frequency cut-offs), encoding to ragged id lists with ``<eos>``, padding, masks,
one-hot.

The special tokens are ``PAD = "<pad>"`` (index 0), ``UNK = "<unk>"`` (1), ``EOS = "<eos>"``
(2) and, when asked for, ``BOS = "<bos>"`` (3).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from oxinet.data.preprocessing import one_hot
from oxinet.data.text import Vocab

__all__ = [
    "PAD", "UNK", "EOS", "BOS", "build_vocab", "encode_sequences", "pad_sequences", "sequence_mask",
    "one_hot", "Vocab",
]

PAD, UNK, EOS, BOS = "<pad>", "<unk>", "<eos>", "<bos>"


def build_vocab(texts: Iterable[str], level: str = "word", min_freq: int = 1, max_size=None,
                bos: bool = False, unk: bool = True) -> Vocab:
    """A :class:`Vocab` with specials ``<pad>, <unk>, <eos>`` (+ ``<bos>``) then the
    tokens seen at least ``min_freq`` times, most frequent first (ties alphabetical),
    at most ``max_size`` of them. ``unk=False`` leaves ``<unk>`` out (character models
    over a closed alphabet)."""
    if level not in ("char", "word"):
        raise ValueError(f"build_vocab: 'level' must be 'char' or 'word', got {level!r}")
    if min_freq < 1:
        raise ValueError(f"build_vocab: 'min_freq' must be >= 1, got {min_freq}")
    counts: Counter = Counter()
    for t in texts:
        counts.update(t if level == "char" else t.split())
    specials = [PAD] + ([UNK] if unk else []) + [EOS] + ([BOS] if bos else [])
    toks = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials),
                  key=lambda t: (-counts[t], t))
    if max_size is not None:
        toks = toks[:max_size]
    v = Vocab(toks, specials, level)
    v.eos_index = v.stoi[EOS]
    v.bos_index = v.stoi.get(BOS)
    v.counts = counts
    return v


def encode_sequences(vocab: Vocab, texts: Sequence[str], add_eos: bool = True, add_bos: bool = False) -> list:
    """Ragged lists of ids (``<unk>`` for unknown tokens), ``<eos>`` appended / ``<bos>``
    prepended on request."""
    eos = vocab.stoi.get(EOS)
    bos = vocab.stoi.get(BOS)
    if add_eos and eos is None:
        raise ValueError("encode_sequences: 'vocab' has no '<eos>' token")
    if add_bos and bos is None:
        raise ValueError("encode_sequences: 'vocab' has no '<bos>' token")
    out = []
    for t in texts:
        ids = []
        for tok in vocab.tokenize(t):
            j = vocab.stoi.get(tok, vocab.unk_index)
            if j is None:
                raise KeyError(f"encode_sequences: token {tok!r} is unknown and 'vocab' has no '<unk>'")
            ids.append(j)
        out.append(([bos] if add_bos else []) + ids + ([eos] if add_eos else []))
    return out


def pad_sequences(seqs, maxlen=None, value: int = 0, padding: str = "post", truncating: str = "post",
                  dtype=np.int64):
    """Ragged sequences -> ``(array (N, maxlen), lengths (N,))`` (Keras' ``pad_sequences``
    with ``padding``/``truncating`` in {"pre", "post"}; lengths are after truncation)."""
    who = "pad_sequences"
    if padding not in ("pre", "post"):
        raise ValueError(f"{who}: 'padding' must be 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"{who}: 'truncating' must be 'pre' or 'post', got {truncating!r}")
    seqs = [list(s) for s in seqs]
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    if maxlen < 0:
        raise ValueError(f"{who}: 'maxlen' must be >= 0, got {maxlen}")
    out = np.full((len(seqs), maxlen), value, dtype)
    lengths = np.zeros(len(seqs), np.int64)
    for i, s in enumerate(seqs):
        if len(s) > maxlen:
            s = s[:maxlen] if truncating == "post" else s[len(s) - maxlen:]
        lengths[i] = len(s)
        if not s:
            continue
        if padding == "post":
            out[i, : len(s)] = s
        else:
            out[i, maxlen - len(s):] = s
    return out, lengths


def sequence_mask(lengths, maxlen=None) -> np.ndarray:
    """Boolean ``(N, maxlen)``: ``mask[i, t] = t < lengths[i]`` (True on real tokens).
    For ``nn.MultiheadAttention``'s ``key_padding_mask`` use ``~mask`` (True = ignore)."""
    lengths = np.asarray(lengths, np.int64)
    if lengths.ndim != 1:
        raise ValueError(f"sequence_mask: 'lengths' must be 1-D, got shape {lengths.shape}")
    if (lengths < 0).any():
        raise ValueError("sequence_mask: 'lengths' must be >= 0")
    if maxlen is None:
        maxlen = int(lengths.max()) if lengths.size else 0
    return np.arange(maxlen)[None, :] < lengths[:, None]
