"""BLEU (Papineni et al.) as taught in the course (INVENTORY F62, erratum E7):

    p_n  = sum over candidate n-grams of Count_clip / sum of Count
    Count_clip(g) = min(count of g in the candidate, max count of g in any single reference)
    BLEU = BP * exp(sum_n w_n log p_n),  w_n = 1/N (N = 4 by default)
    BP   = 1 if c > r else exp(1 - r/c)

``c`` is the candidate length and ``r`` the reference length closest to ``c`` (the shorter
one on ties). Corpus BLEU sums clipped counts, counts, ``c`` and ``r`` over the sentences
before taking the ratios (it is not the mean of sentence scores).

Sentences are token lists; a string is tokenised by :func:`simple_tokenize` (lowercased
words and numbers, punctuation dropped).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

__all__ = [
    "simple_tokenize", "ngrams", "modified_precision", "brevity_penalty", "sentence_bleu", "corpus_bleu",
]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SMOOTHING = (None, "epsilon", "add1")


def simple_tokenize(text: str) -> list[str]:
    """Lowercased word/number tokens of ``text``; punctuation is dropped."""
    return _WORD.findall(text.lower())


def _tokens(s, who, name):
    if isinstance(s, str):
        return simple_tokenize(s)
    try:
        return list(s)
    except TypeError:
        raise TypeError(f"{who}: '{name}' must be a string or a sequence of tokens, got {type(s).__name__}") from None


def ngrams(tokens: Sequence, n: int) -> Counter:
    """Counter of the n-grams (tuples) of ``tokens``."""
    if n < 1:
        raise ValueError(f"ngrams: 'n' must be >= 1, got {n}")
    t = tuple(tokens)
    return Counter(t[i:i + n] for i in range(len(t) - n + 1))


def _clipped_counts(candidate, references, n):
    cand = ngrams(candidate, n)
    max_ref: Counter = Counter()
    for ref in references:
        for g, c in ngrams(ref, n).items():
            if c > max_ref[g]:
                max_ref[g] = c
    clipped = sum(min(c, max_ref[g]) for g, c in cand.items())
    return clipped, sum(cand.values())


def modified_precision(candidate, references, n: int = 1) -> tuple[int, int]:
    """``(clipped, total)``: the numerator and denominator of the modified n-gram precision
    p_n of one candidate against its references (``clipped / total`` is p_n)."""
    who = "modified_precision"
    cand = _tokens(candidate, who, "candidate")
    refs = [_tokens(r, who, "references") for r in _refs(references, who)]
    return _clipped_counts(cand, refs, n)


def _refs(references, who):
    """A list of references, each a string (tokenised) or a token list; one string alone is
    one reference. A single token list must be wrapped: ``[["the", "cat"]]``."""
    if isinstance(references, str):
        return [references]
    refs = list(references)
    if not refs:
        raise ValueError(f"{who}: 'references' must hold at least one reference")
    return refs


def _closest_ref_len(c, ref_lens):
    return min(ref_lens, key=lambda r: (abs(r - c), r))


def brevity_penalty(c: int, r: int) -> float:
    """BP = 1 if c > r else exp(1 - r/c); 0 for an empty candidate."""
    if c > r:
        return 1.0
    if c == 0:
        return 0.0
    return math.exp(1.0 - r / c)


def _combine(clipped, totals, c, r, max_n, weights, smoothing, epsilon):
    if weights is None:
        weights = [1.0 / max_n] * max_n
    weights = list(weights)
    if len(weights) != max_n:
        raise ValueError(f"bleu: 'weights' has {len(weights)} entries but max_n is {max_n}")
    if smoothing not in _SMOOTHING:
        raise ValueError(f"bleu: 'smoothing' must be one of {_SMOOTHING}, got {smoothing!r}")
    if c == 0:
        return 0.0
    log_sum = 0.0
    for k in range(max_n):
        num, den = float(clipped[k]), float(totals[k])
        if smoothing == "add1" and k > 0:
            num, den = num + 1.0, den + 1.0
        if den == 0:
            # the candidate is shorter than n: no n-grams at all
            if smoothing is None:
                return 0.0
            num, den = epsilon, 1.0
        if num == 0:
            if smoothing is None:
                return 0.0
            num = epsilon
        log_sum += weights[k] * math.log(num / den)
    return brevity_penalty(c, r) * math.exp(log_sum)


def sentence_bleu(candidate, references, max_n: int = 4, weights=None, smoothing=None, epsilon: float = 0.1) -> float:
    """BLEU of one candidate against one or more references, in [0, 1].

    ``smoothing``: None (any zero precision gives 0, the plain definition), ``"epsilon"``
    (a zero clipped count becomes ``epsilon``) or ``"add1"`` (add one to the numerator and
    denominator of p_n for n >= 2, Lin & Och). ``weights`` default to 1/max_n each.
    """
    who = "sentence_bleu"
    if max_n < 1:
        raise ValueError(f"{who}: 'max_n' must be >= 1, got {max_n}")
    cand = _tokens(candidate, who, "candidate")
    refs = [_tokens(r, who, "references") for r in _refs(references, who)]
    clipped, totals = zip(*(_clipped_counts(cand, refs, n) for n in range(1, max_n + 1)))
    r = _closest_ref_len(len(cand), [len(x) for x in refs])
    return _combine(clipped, totals, len(cand), r, max_n, weights, smoothing, epsilon)


def corpus_bleu(candidates, references_list, max_n: int = 4, weights=None, smoothing=None,
                epsilon: float = 0.1) -> float:
    """Corpus-level BLEU: clipped counts, counts and lengths summed over all sentences.

    ``references_list[i]`` holds the references of ``candidates[i]``."""
    who = "corpus_bleu"
    candidates, references_list = list(candidates), list(references_list)
    if len(candidates) != len(references_list):
        raise ValueError(f"{who}: 'references_list' has {len(references_list)} entries but 'candidates' has "
                         f"{len(candidates)}")
    if max_n < 1:
        raise ValueError(f"{who}: 'max_n' must be >= 1, got {max_n}")
    clipped, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for cand, refs in zip(candidates, references_list):
        cand = _tokens(cand, who, "candidates")
        refs = [_tokens(x, who, "references_list") for x in _refs(refs, who)]
        for k in range(max_n):
            a, b = _clipped_counts(cand, refs, k + 1)
            clipped[k] += a
            totals[k] += b
        c += len(cand)
        r += _closest_ref_len(len(cand), [len(x) for x in refs])
    return _combine(clipped, totals, c, r, max_n, weights, smoothing, epsilon)
