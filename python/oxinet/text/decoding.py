"""Decoding a conditional language model: greedy search and beam search (INVENTORY F61),
and CTC greedy / prefix-beam decoding (F64).

Greedy and beam search work with any step function

    step(state, tokens) -> (log_probs, new_state)

where ``tokens`` is an int64 array ``(k,)`` (the last token of each of ``k`` hypotheses),
``log_probs`` is ``(k, V)`` (log-probabilities of the next token; a Tensor is accepted)
and ``state`` is whatever the model carries (arrays, Tensors, tuples/lists/dicts of
them) with the hypothesis index on axis 0 of every array. Beam search reorders the state
with ``reorder(state, index)``, by default indexing axis 0 of every array leaf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "select_state", "greedy_search", "beam_search", "Hypothesis", "sequence_log_prob", "ctc_collapse", "ctc_greedy_decode",
    "ctc_beam_decode",
]


def _np(x):
    from oxinet.tensor import Tensor

    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def select_state(state, index):
    """``state`` with every array (or Tensor) leaf indexed by ``index`` on axis 0."""
    from oxinet.tensor import Tensor

    if state is None:
        return None
    if isinstance(state, Tensor):
        return Tensor(state.numpy()[index])
    if isinstance(state, np.ndarray):
        return state[index]
    if isinstance(state, tuple):
        return tuple(select_state(s, index) for s in state)
    if isinstance(state, list):
        return [select_state(s, index) for s in state]
    if isinstance(state, dict):
        return {k: select_state(v, index) for k, v in state.items()}
    return state  # scalars and other constants are shared by all hypotheses


def _log_probs(step, state, tokens, who):
    lp, state = step(state, tokens)
    lp = _np(lp).astype(np.float64, copy=False)
    if lp.ndim != 2 or lp.shape[0] != tokens.shape[0]:
        raise ValueError(f"{who}: 'step' returned log_probs of shape {lp.shape}, expected ({tokens.shape[0]}, V)")
    return lp, state


def greedy_search(step, state, bos, eos=None, max_len: int = 20):
    """Pick the most probable token at every step (a batch of ``N`` sequences at once).

    ``bos``: an int (one sequence) or an int array ``(N,)`` of start tokens fed first.
    Returns ``(tokens, log_prob)``: int64 ``(N, L)`` generated tokens (after ``bos``, each
    row cut after its ``eos`` and padded with ``eos`` once finished) and the float64
    ``(N,)`` summed log-probabilities; for an int ``bos`` the first axis is dropped.
    """
    who = "greedy_search"
    if max_len < 1:
        raise ValueError(f"{who}: 'max_len' must be >= 1, got {max_len}")
    single = np.ndim(bos) == 0
    tokens = np.atleast_1d(np.asarray(bos, np.int64))
    n = tokens.shape[0]
    done = np.zeros(n, bool)
    out, total = [], np.zeros(n)
    for _ in range(max_len):
        lp, state = _log_probs(step, state, tokens, who)
        nxt = lp.argmax(axis=1)
        if eos is not None:
            nxt = np.where(done, eos, nxt)
        total += np.where(done, 0.0, lp[np.arange(n), nxt])
        out.append(nxt)
        if eos is not None:
            done |= nxt == eos
            if done.all():
                break
        tokens = nxt
    res = np.stack(out, axis=1).astype(np.int64)
    return (res[0], float(total[0])) if single else (res, total)


@dataclass(order=True)
class Hypothesis:
    """A finished beam-search candidate: ``score`` = ``log_prob / len(tokens) ** alpha``."""

    score: float
    log_prob: float = field(compare=False)
    tokens: list = field(compare=False)


def beam_search(step, state, bos: int, eos=None, beam_width: int = 3, max_len: int = 20, alpha: float = 0.7,
                reorder=select_state, return_all: bool = False):
    """Beam search with width ``B`` and length normalisation (INVENTORY F61).

    Start from one hypothesis ``[bos]``; at each step every live hypothesis is extended by
    every token, scored by its summed log-probability, and the ``B`` best extensions
    overall are kept. Those ending in ``eos`` are finished and leave the beam (which
    narrows); at ``max_len`` the live ones are finished as they are. Candidates are ranked
    by ``sum log p / T**alpha`` (``T`` = number of generated tokens, ``eos`` included):
    ``alpha = 0`` no normalisation, ``1`` the mean log-probability. ``B = 1`` is greedy
    search.

    Returns the best :class:`Hypothesis` (tokens after ``bos``, without ``eos``), or all
    finished ones best first with ``return_all=True``.
    """
    who = "beam_search"
    if beam_width < 1:
        raise ValueError(f"{who}: 'beam_width' must be >= 1, got {beam_width}")
    if max_len < 1:
        raise ValueError(f"{who}: 'max_len' must be >= 1, got {max_len}")
    live_tokens = [[]]
    live_lp = np.zeros(1)
    last = np.asarray([bos], np.int64)
    finished: list[Hypothesis] = []
    width = beam_width

    def norm(lp, length):
        return lp / (max(length, 1) ** alpha)

    for t in range(max_len):
        lp, state = _log_probs(step, state, last, who)
        v = lp.shape[1]
        cand = (live_lp[:, None] + lp).ravel()
        k = min(width, cand.size)
        # stable top-k: ties broken by the lower hypothesis index, then the lower token
        order = np.argsort(-cand, kind="stable")[:k]
        keep_src, keep_tok, keep_lp = [], [], []
        for idx in order.tolist():
            src, tok = divmod(idx, v)
            score = float(cand[idx])
            if eos is not None and tok == eos:
                finished.append(Hypothesis(norm(score, t + 1), score, list(live_tokens[src])))
                width -= 1
            else:
                keep_src.append(src)
                keep_tok.append(tok)
                keep_lp.append(score)
        if not keep_src:
            break
        live_tokens = [live_tokens[s] + [tok] for s, tok in zip(keep_src, keep_tok)]
        live_lp = np.asarray(keep_lp)
        last = np.asarray(keep_tok, np.int64)
        state = reorder(state, np.asarray(keep_src, np.int64))
    else:
        for toks, s in zip(live_tokens, live_lp.tolist()):
            finished.append(Hypothesis(norm(s, len(toks)), s, list(toks)))
    finished.sort(key=lambda h: -h.score)
    return finished if return_all else finished[0]


def sequence_log_prob(step, state, bos: int, tokens, eos=None) -> float:
    """log P(tokens (+ eos) | x) under the model: the sum of the step log-probabilities of
    a given output. The course's beam-search error analysis (F61) compares it for the human
    output y* and the beam output y^: P(y*|x) > P(y^|x) means the search is at fault,
    otherwise the model is."""
    seq = [int(t) for t in tokens] + ([] if eos is None else [int(eos)])
    last = np.asarray([bos], np.int64)
    total = 0.0
    for tok in seq:
        lp, state = _log_probs(step, state, last, "sequence_log_prob")
        total += float(lp[0, tok])
        last = np.asarray([tok], np.int64)
    return total


# --- CTC --------------------------------------------------------------------------------


def ctc_collapse(path, blank: int = 0) -> list:
    """The CTC collapse rule: merge repeats not separated by a blank, then drop blanks
    (``"ttt_h_eee___ ___qqq__" -> "the q"``)."""
    out, prev = [], None
    for s in path:
        s = s.item() if hasattr(s, "item") else s
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return out


def _ctc_input(log_probs, lengths, who):
    lp = _np(log_probs)
    if lp.ndim not in (2, 3):
        raise ValueError(f"{who}: 'log_probs' must be (T, C) or (T, N, C), got shape {lp.shape}")
    single = lp.ndim == 2
    if single:
        lp = lp[:, None, :]
    t, n, _ = lp.shape
    if lengths is None:
        lengths = np.full(n, t, np.int64)
    lengths = np.broadcast_to(np.asarray(lengths, np.int64), (n,))
    if (lengths < 0).any() or (lengths > t).any():
        raise ValueError(f"{who}: 'input_lengths' must lie in [0, {t}], got {lengths.tolist()}")
    return lp, lengths, single


def ctc_greedy_decode(log_probs, input_lengths=None, blank: int = 0):
    """Best path decoding: the most probable class per frame, collapsed.

    ``log_probs``: (T, C) or (T, N, C) like :class:`oxinet.nn.CTCLoss` (time first).
    Returns a list of label lists (one list for a 2-D input)."""
    lp, lengths, single = _ctc_input(log_probs, input_lengths, "ctc_greedy_decode")
    best = lp.argmax(axis=2)
    out = [ctc_collapse(best[: lengths[i], i].tolist(), blank) for i in range(lp.shape[1])]
    return out[0] if single else out


def _logaddexp(a, b):
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def ctc_beam_decode(log_probs, input_lengths=None, beam_width: int = 8, blank: int = 0, return_scores=False):
    """CTC prefix beam search: keeps the ``beam_width`` label prefixes with the largest
    total probability, each summed over all alignments (blank-ending and non-blank-ending
    parts tracked separately, so ``a_a`` and ``aa`` are told apart).

    ``log_probs``: (T, C) or (T, N, C) log-probabilities. Returns the best label list per
    sequence (a list of them for a 3-D input); with ``return_scores`` also the log
    probability of each returned prefix.
    """
    who = "ctc_beam_decode"
    if beam_width < 1:
        raise ValueError(f"{who}: 'beam_width' must be >= 1, got {beam_width}")
    lp, lengths, single = _ctc_input(log_probs, input_lengths, who)
    ninf = -math.inf
    results, scores = [], []
    for i in range(lp.shape[1]):
        beams = {(): (0.0, ninf)}  # prefix -> (log p ending in blank, log p ending in non-blank)
        for t in range(int(lengths[i])):
            row = lp[t, i].astype(np.float64)
            nxt: dict = {}

            def add(prefix, pb, pnb):
                ob, onb = nxt.get(prefix, (ninf, ninf))
                nxt[prefix] = (_logaddexp(ob, pb), _logaddexp(onb, pnb))

            for prefix, (pb, pnb) in beams.items():
                ptot = _logaddexp(pb, pnb)
                add(prefix, ptot + row[blank], ninf)  # blank keeps the prefix
                last = prefix[-1] if prefix else None
                for c in range(row.shape[0]):
                    if c == blank:
                        continue
                    p = row[c]
                    if c == last:
                        add(prefix, ninf, pnb + p)  # repeat collapses into the same prefix
                        add(prefix + (c,), ninf, pb + p)  # separated by a blank: a new label
                    else:
                        add(prefix + (c,), ninf, ptot + p)
            ranked = sorted(nxt.items(), key=lambda kv: -_logaddexp(*kv[1]))
            beams = dict(ranked[:beam_width])
        best, (pb, pnb) = max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))
        results.append(list(best))
        scores.append(_logaddexp(pb, pnb))
    if single:
        return (results[0], scores[0]) if return_scores else results[0]
    return (results, scores) if return_scores else results
