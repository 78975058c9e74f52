"""Neural machine translation of human-readable dates into ISO dates (INVENTORY F63, F61;
S66): a bidirectional LSTM encoder, an attention decoder and beam search.

Encoder: character embeddings -> bidirectional LSTM -> a<t'> = [a->; a<-] (t' = 1..Tx).
Decoder step t (the course's attention model):

    e<t,t'> = v . tanh(W [s<t-1>; a<t'>] + b)        a small dense net, trained jointly
    alpha<t,t'> = softmax over t' of e<t,t'>          (padding positions masked)
    c<t> = sum_t' alpha<t,t'> a<t'>
    s<t>, m<t> = LSTMCell([c<t>; embed(y<t-1>)], (s<t-1>, m<t-1>))
    P(y<t> | x, y<1..t-1>) = softmax(W_y s<t> + b_y)

trained with teacher forcing on ``YYYY-MM-DD<eos>``; decoded greedily (batched) and with
beam search (:func:`oxinet.text.beam_search`, width 3) on held-out dates. The attention
weights of a few examples are saved as a heatmap PNG (rows: output characters, columns:
input characters).

Run: ``python examples/date_translation.py`` (about 1.5 minutes on 2 busy cores). The
default run reaches 98.0% exact match on 500 held-out dates, greedy and beam (B = 3);
all of the beam's errors are the model's (P(y*|x) < P(y^|x)), none the search's.

``feed_previous=False`` is the course's exercise variant: the decoder gets only the context
(no previous character). Its attention is much sharper (each day/month digit has to be
fetched through attention: see the heatmaps) and it scored 99.4% greedy on the 500 dates,
but its steps no longer depend on the chosen tokens, so beam search reduces to greedy
search; the default keeps the conditional language model of F61 that beam search is for.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oxinet as ox  # noqa: E402
import oxinet.nn.functional as F  # noqa: E402
from oxinet import nn  # noqa: E402
from oxinet.data import make_dates  # noqa: E402
from oxinet.text import (  # noqa: E402
    beam_search, build_vocab, encode_sequences, greedy_search, pad_sequences, sequence_log_prob,
)
from oxinet.text.png import attention_heatmap  # noqa: E402
from oxinet.text.seq2seq import AttentionNMT  # noqa: E402
from _textutil import batches, log  # noqa: E402

OUT_CHARS = "0123456789-"


def make_vocabs(pairs):
    src = build_vocab([h for h, _ in pairs], level="char")
    tgt = build_vocab([OUT_CHARS], level="char", bos=True, unk=False)
    return src, tgt


def encode(pairs, src, tgt, tx):
    xs = encode_sequences(src, [h for h, _ in pairs], add_eos=False)
    x, lengths = pad_sequences(xs, maxlen=tx, value=src.pad_index)
    ys = np.asarray(encode_sequences(tgt, [m for _, m in pairs], add_eos=True), np.int64)  # (N, 11)
    y_in = np.concatenate([np.full((len(pairs), 1), tgt.bos_index), ys[:, :-1]], 1)
    return x, np.maximum(lengths, 1), y_in, ys


def _step_fn(model):
    def step(state, tokens):
        with ox.no_grad():
            logits, state, _ = model.step(state, tokens)
        return logits.log_softmax(-1).numpy(), state

    return step


def decode_greedy(model, x, lengths, tgt, ty):
    with ox.no_grad():
        state = model.encode(x, lengths)
    toks, _ = greedy_search(_step_fn(model), state, np.full(len(x), tgt.bos_index), tgt.eos_index, max_len=ty)
    return ["".join(tgt.itos[i] for i in row if i != tgt.eos_index and i != tgt.pad_index) for row in toks]


def decode_beam(model, x, lengths, tgt, ty, beam_width=3):
    out = []
    step = _step_fn(model)
    for i in range(len(x)):
        with ox.no_grad():
            state = model.encode(x[i:i + 1], lengths[i:i + 1])
        h = beam_search(step, state, tgt.bos_index, tgt.eos_index, beam_width=beam_width, max_len=ty, alpha=0.7)
        out.append("".join(tgt.itos[j] for j in h.tokens))
    return out


def attention_map(model, x, lengths, tgt, ty):
    """Greedy decode of one example, returning the (Ty, Tx) attention weights."""
    with ox.no_grad():
        state = model.encode(x, lengths)
        tok = np.array([tgt.bos_index])
        rows = []
        for _ in range(ty):
            logits, state, alpha = model.step(state, tok)
            tok = logits.numpy().argmax(-1)
            rows.append(alpha.numpy()[0])
    return np.stack(rows)


def main(n_train=10000, n_test=500, tx=30, epochs=6, batch_size=100, lr=0.004, emb=32, enc_hidden=64,
         dec_hidden=128, beam_width=3, n_beam=None, feed_previous=True, seed=0, heatmap="date_attention.png",
         verbose=True):
    ox.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pairs = make_dates(n_train + n_test, seed=seed)
    train, test = pairs[:n_train], pairs[n_train:]
    src, tgt = make_vocabs(pairs)
    x, lx, yi, yo = encode(train, src, tgt, tx)
    xt, lxt, _, _ = encode(test, src, tgt, tx)
    ty = yo.shape[1]
    model = AttentionNMT(len(src), len(tgt), emb, enc_hidden, dec_hidden, feed_previous=feed_previous)
    opt = ox.optim.Adam(model.parameters(), lr=lr)
    sched = ox.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.5)
    v = len(tgt)
    for ep in range(epochs):
        model.train()
        tot, nb = 0.0, 0
        for idx in batches(n_train, batch_size, rng):
            logits = model(x[idx], lx[idx], yi[idx])
            loss = F.cross_entropy(logits.reshape(-1, v), yo[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            tot += float(loss.item())
            nb += 1
        if ep == 0:
            first_loss = tot / nb
        sched.step()
        model.eval()
        k = min(200, n_test)
        acc = np.mean([p == t for p, (_, t) in zip(decode_greedy(model, xt[:k], lxt[:k], tgt, ty), test[:k])])
        log(verbose, f"epoch {ep + 1}/{epochs}: train loss {tot / nb:.4f}, greedy exact match (first {k}) {acc:.3f}")
    model.eval()
    greedy = decode_greedy(model, xt, lxt, tgt, ty)
    greedy_acc = float(np.mean([p == t for p, (_, t) in zip(greedy, test)]))
    char_acc = float(np.mean([sum(a == b for a, b in zip(p, t)) / len(t) for p, (_, t) in zip(greedy, test)]))
    nb_ = n_test if n_beam is None else min(n_beam, n_test)
    beam = decode_beam(model, xt[:nb_], lxt[:nb_], tgt, ty, beam_width)
    beam_acc = float(np.mean([p == t for p, (_, t) in zip(beam, test[:nb_])]))
    log(verbose, f"held-out exact match: greedy {greedy_acc:.4f} ({n_test} dates), "
                 f"beam B={beam_width} {beam_acc:.4f} ({nb_} dates)")
    # the course's error analysis on beam mistakes: P(y*|x) > P(y^|x) blames the search, else the model
    step = _step_fn(model)
    search_fault = model_fault = 0
    for i, (p, (_, t)) in enumerate(zip(beam, test[:nb_])):
        if p != t:
            with ox.no_grad():
                st = model.encode(xt[i:i + 1], lxt[i:i + 1])
            ids = lambda s: [tgt.stoi[c] for c in s]  # noqa: E731
            lp_true = sequence_log_prob(step, st, tgt.bos_index, ids(t), tgt.eos_index)
            lp_beam = sequence_log_prob(step, st, tgt.bos_index, ids(p), tgt.eos_index)
            search_fault += lp_true > lp_beam
            model_fault += lp_true <= lp_beam
    log(verbose, f"beam errors: {search_fault} search at fault, {model_fault} model at fault")
    for (h, t), p in list(zip(test, beam))[:5]:
        log(verbose, f"  {h!r:36} -> {p}  (truth {t})")
    if heatmap:
        # one figure per example: <stem>_<i>.png (rows: output characters, columns: input characters)
        stem, ext = os.path.splitext(str(heatmap))
        paths = []
        for i in range(3):
            n_in = max(int(lxt[i]), 1)
            m = attention_map(model, xt[i:i + 1], lxt[i:i + 1], tgt, ty)[:, :n_in]
            out = beam[i] if i < len(beam) else greedy[i]
            y_labels = list(out.ljust(ty - 1))[: ty - 1] + ["<eos>"]
            path = f"{stem}_{i}{ext or '.png'}" if i else str(heatmap)
            attention_heatmap(path, m, list(test[i][0][:n_in]), y_labels, f"{test[i][0]!r} -> {out}")
            paths.append(path)
        log(verbose, f"attention weights of 3 held-out dates -> {', '.join(paths)}")
    return {"greedy_accuracy": greedy_acc, "beam_accuracy": beam_acc, "model": model, "char_accuracy": char_acc,
            "first_loss": first_loss, "last_loss": tot / nb,
            "search_fault": int(search_fault), "model_fault": int(model_fault),
            "examples": list(zip([h for h, _ in test[:5]], beam[:5]))}


if __name__ == "__main__":
    main()
