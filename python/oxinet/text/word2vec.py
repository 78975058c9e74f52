"""word2vec skip-gram with negative sampling (INVENTORY F56, F57), trained with vectorised
NumPy mini-batches and explicit gradients.

For a (context c, target t) pair and k noise words n_1..n_k drawn from the unigram
distribution raised to 3/4:

    L = -log s(theta_t . e_c) - sum_i log s(-theta_{n_i} . e_c)       (s = sigmoid)

``E`` (rows e_w) are the word vectors used afterwards, ``Theta`` (rows theta_w) the output
vectors. Frequent words are subsampled: each occurrence of w is dropped with probability
``1 - sqrt(t / f(w))`` (Mikolov et al.; f = relative frequency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oxinet.data._rng import make_generator

__all__ = [
    "token_counts", "unigram_noise", "subsample_keep_prob", "skipgram_pairs", "sgns_loss_grad",
    "train_skipgram", "SkipGramResult",
]


def _sentences(sentences, who):
    out = [np.asarray(s, np.int64).ravel() for s in sentences]
    for s in out:
        if s.size and s.min() < 0:
            raise ValueError(f"{who}: 'sentences' hold negative token ids")
    return out


def token_counts(sentences, vocab_size: int) -> np.ndarray:
    """Occurrences of every token id in ``sentences`` (int64 ``(vocab_size,)``)."""
    flat = np.concatenate([np.asarray(s, np.int64).ravel() for s in sentences] or [np.zeros(0, np.int64)])
    if flat.size and flat.max() >= vocab_size:
        raise ValueError(f"token_counts: token id {flat.max()} >= 'vocab_size' {vocab_size}")
    return np.bincount(flat, minlength=vocab_size)


def unigram_noise(counts, power: float = 0.75) -> np.ndarray:
    """P(w) = f(w)^power / sum_j f(w_j)^power, the negative-sampling distribution (F57)."""
    c = np.asarray(counts, np.float64)
    if (c < 0).any():
        raise ValueError("unigram_noise: 'counts' must be >= 0")
    p = c**power
    s = p.sum()
    if s <= 0:
        raise ValueError("unigram_noise: 'counts' are all zero")
    return p / s


def subsample_keep_prob(counts, t: float = 1e-3) -> np.ndarray:
    """Probability of keeping each occurrence of a word: min(1, sqrt(t / f(w)))."""
    c = np.asarray(counts, np.float64)
    f = c / max(c.sum(), 1.0)
    with np.errstate(divide="ignore"):
        keep = np.sqrt(t / f)
    return np.minimum(1.0, np.where(f > 0, keep, 1.0))


def skipgram_pairs(sentences, window: int = 2, keep_prob=None, dynamic_window: bool = True, seed=None):
    """(context, target) index pairs of every word with its neighbours within ``window``.

    ``keep_prob`` (per word id) subsamples the tokens first; ``dynamic_window`` draws a
    window size in 1..window per centre word (word2vec's way of weighting near words more).
    Returns two int64 arrays ``(P,)``: centre (context) words and target words."""
    who = "skipgram_pairs"
    if window < 1:
        raise ValueError(f"{who}: 'window' must be >= 1, got {window}")
    rng = make_generator(seed, who)
    sents = _sentences(sentences, who)
    if keep_prob is not None:
        kp = np.asarray(keep_prob, np.float64)
        sents = [s[rng.random(s.size) < kp[s]] for s in sents]
    if not sents:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tok = np.concatenate(sents)
    sid = np.repeat(np.arange(len(sents)), [s.size for s in sents])
    reach = rng.integers(1, window + 1, size=tok.size) if dynamic_window else np.full(tok.size, window)
    cs, ts = [], []
    for d in range(1, window + 1):
        same = sid[:-d] == sid[d:]
        fwd = same & (reach[:-d] >= d)  # centre i, target i + d
        bwd = same & (reach[d:] >= d)   # centre i + d, target i
        cs += [tok[:-d][fwd], tok[d:][bwd]]
        ts += [tok[d:][fwd], tok[:-d][bwd]]
    return np.concatenate(cs), np.concatenate(ts)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def sgns_loss_grad(E, Theta, centers, targets, negatives):
    """Summed negative-sampling loss of a batch and its gradients.

    ``E``, ``Theta``: (V, D); ``centers``, ``targets``: (B,) ids; ``negatives``: (B, k) ids.
    Returns ``(loss, dE, dTheta)`` with dense gradients shaped like ``E`` and ``Theta``."""
    centers = np.asarray(centers, np.int64)
    targets = np.asarray(targets, np.int64)
    negatives = np.asarray(negatives, np.int64)
    if negatives.ndim != 2 or negatives.shape[0] != centers.shape[0]:
        raise ValueError(f"sgns_loss_grad: 'negatives' has shape {negatives.shape}, expected "
                         f"({centers.shape[0]}, k)")
    ec = E[centers]                                # (B, D)
    tp = Theta[targets]                            # (B, D)
    tn = Theta[negatives]                          # (B, k, D)
    sp = (tp * ec).sum(-1)                         # (B,)
    sn = np.einsum("bkd,bd->bk", tn, ec)           # (B, k)
    loss = -(_log_sigmoid(sp).sum() + _log_sigmoid(-sn).sum())
    gp = _sigmoid(sp) - 1.0                        # dL/dsp
    gn = _sigmoid(sn)                              # dL/dsn
    dec = gp[:, None] * tp + np.einsum("bk,bkd->bd", gn, tn)
    dE = np.zeros_like(E)
    dT = np.zeros_like(Theta)
    np.add.at(dE, centers, dec)
    np.add.at(dT, targets, gp[:, None] * ec)
    np.add.at(dT, negatives.ravel(), (gn[:, :, None] * ec[:, None, :]).reshape(-1, E.shape[1]))
    return float(loss), dE, dT


@dataclass
class SkipGramResult:
    vectors: np.ndarray          # E: (V, D), the word vectors
    context_vectors: np.ndarray  # Theta: (V, D)
    losses: list                 # mean loss per pair, per epoch


def train_skipgram(sentences, vocab_size: int, dim: int = 50, window: int = 2, negatives: int = 5,
                   epochs: int = 5, lr: float = 0.025, batch_size: int = 128, subsample: float | None = 1e-3,
                   ignore=(), seed=0) -> SkipGramResult:
    """Train skip-gram with negative sampling on integer ``sentences``.

    Plain SGD on the summed loss of each mini-batch with a linearly decaying learning rate
    (as word2vec); ``E`` starts uniform in +-0.5/dim and ``Theta`` at zero. ``ignore``:
    token ids (e.g. padding) never used as centre, target or noise word.
    """
    who = "train_skipgram"
    if dim < 1 or negatives < 0 or epochs < 1 or batch_size < 1:
        raise ValueError(f"{who}: 'dim', 'epochs', 'batch_size' must be >= 1 and 'negatives' >= 0")
    rng = make_generator(seed, who)
    sents = _sentences(sentences, who)
    if ignore:
        ign = np.asarray(list(ignore), np.int64)
        sents = [s[~np.isin(s, ign)] for s in sents]
    counts = token_counts(sents, vocab_size)
    noise = unigram_noise(counts)
    cdf = np.cumsum(noise)
    keep = subsample_keep_prob(counts, subsample) if subsample else None
    E = (rng.random((vocab_size, dim)) - 0.5) / dim
    T = np.zeros((vocab_size, dim))
    losses = []
    for ep in range(epochs):
        c, t = skipgram_pairs(sents, window, keep, True, rng)
        perm = rng.permutation(c.size)
        c, t = c[perm], t[perm]
        total = 0.0
        nb = max(1, -(-c.size // batch_size))
        for b in range(nb):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            cb, tb = c[sl], t[sl]
            if cb.size == 0:
                continue
            neg = np.searchsorted(cdf, rng.random((cb.size, negatives)) * cdf[-1], side="right")
            neg = np.minimum(neg, vocab_size - 1)
            loss, dE, dT = sgns_loss_grad(E, T, cb, tb, neg)
            step = lr * max(1e-4, 1.0 - (ep * nb + b) / (epochs * nb))
            E -= step * dE
            T -= step * dT
            total += loss
        losses.append(total / max(c.size, 1))
    return SkipGramResult(E, T, losses)
