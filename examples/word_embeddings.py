"""Learning word vectors on the generated sentence corpus (INVENTORY F54-F59; S59, S60, S62):
skip-gram with negative sampling and GloVe, similarity and analogy queries, a PCA plot,
then debiasing along an axis found from definitional pairs.

The corpus has no gender, so the "bias" removed here is sentiment polarity: its direction
comes from pairs such as (good, bad), (love, hate); the subject nouns (movie, food, hotel,
...) should carry no polarity and are neutralised; the verb pairs are equalised. Checks:
neutralised words have ~0 projection on the axis, equalised pairs are symmetric (opposite
projections, equal distance to every neutral word).

Run: ``python examples/word_embeddings.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from oxinet.data import SENTIMENT_LEXICON, make_sentiment  # noqa: E402
from oxinet.text import (  # noqa: E402
    WordVectors, bias_direction, build_vocab, cooccurrence_matrix, encode_sequences, equalize, neutralize,
    plot_embeddings, project_on, train_glove, train_skipgram,
)
from _textutil import log  # noqa: E402

POS_ADJ = SENTIMENT_LEXICON["positive"][:12]
NEG_ADJ = SENTIMENT_LEXICON["negative"][:12]
DEFINITIONAL = [("good", "bad"), ("great", "terrible"), ("excellent", "awful"), ("wonderful", "horrible"),
                ("love", "hate"), ("like", "dislike"), ("enjoy", "regret"), ("admire", "despise")]
NEUTRAL = ["movie", "film", "food", "service", "phone", "hotel", "room", "book", "staff", "concert", "game",
           "coffee", "trip", "show", "pizza", "museum", "lecture", "album", "park", "dessert"]
SPECIALS = ("<pad>", "<unk>", "<eos>")
EQUALIZE = [("loved", "hated"), ("liked", "disliked"), ("enjoyed", "regretted")]


def polarity_precision(wv, k=5):
    """Mean fraction of the k nearest neighbours of each polar adjective that are adjectives
    of the same polarity (chance is about 11/100)."""
    scores = []
    for same in (POS_ADJ, NEG_ADJ):
        for w in same:
            if w in wv:
                nn_ = [x for x, _ in wv.most_similar(w, k)]
                scores.append(np.mean([x in same for x in nn_]))
    return float(np.mean(scores))


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def debias(wv, verbose):
    e = unit(wv.vectors)
    wvu = WordVectors(e, wv.words)
    pairs = np.array([[wvu[a], wvu[b]] for a, b in DEFINITIONAL if a in wvu and b in wvu])
    g = bias_direction(pairs)
    gu = unit(g)
    neutral = [w for w in NEUTRAL if w in wvu]
    before = np.array([wvu[w] @ gu for w in neutral])
    out = e.copy()
    for w in neutral:
        out[wvu.index[w]] = neutralize(wvu[w], g)
    after = np.array([out[wvu.index[w]] @ gu for w in neutral])
    sym = []
    for a, b in EQUALIZE:
        if a in wvu and b in wvu:
            ea, eb = equalize(wvu[a], wvu[b], g)
            out[wvu.index[a]], out[wvu.index[b]] = ea, eb
            d = [abs(np.linalg.norm(ea - out[wvu.index[w]]) - np.linalg.norm(eb - out[wvu.index[w]]))
                 for w in neutral]
            sym.append((abs(ea @ gu + eb @ gu), max(d), float(ea @ gu), float(wvu[a] @ gu), float(wvu[b] @ gu)))
    log(verbose, f"  neutral nouns: |projection on the polarity axis| mean {np.abs(before).mean():.3f} -> "
                 f"{np.abs(after).mean():.2e}")
    for (a, b), s in zip(EQUALIZE, sym):
        log(verbose, f"  equalize {a}/{b}: projections {s[3]:+.3f}/{s[4]:+.3f} -> {s[2]:+.3f}/{-s[2]:+.3f}; "
                     f"max |distance difference| to neutral nouns {s[1]:.1e}")
    return {"neutral_projection_before": float(np.abs(before).max()),
            "neutral_projection_after": float(np.abs(after).max()),
            "equalize_asymmetry": float(max(s[0] for s in sym)),
            "equalize_distance_gap": float(max(s[1] for s in sym)),
            "vectors": WordVectors(out, wv.words)}


def main(n_sentences=4000, dim=30, sg_epochs=6, glove_epochs=60, window=3, seed=0, plot="embeddings_pca.png",
         verbose=True):
    sents, _ = make_sentiment(n_sentences, seed=seed)
    vocab = build_vocab(sents, level="word")
    ids = encode_sequences(vocab, sents, add_eos=False)
    words = vocab.itos
    results = {}

    sg = train_skipgram(ids, len(vocab), dim=dim, window=window, negatives=5, epochs=sg_epochs, lr=0.05,
                        subsample=1e-2, ignore=(vocab.pad_index, vocab.unk_index, vocab.eos_index), seed=seed)
    X = cooccurrence_matrix(ids, len(vocab), window=window)
    gl = train_glove(X, dim=dim, epochs=glove_epochs, lr=0.05, x_max=50, seed=seed)
    for name, vec, losses in (("skipgram", sg.vectors, sg.losses), ("glove", gl.vectors, gl.losses)):
        # remove the direction shared by all words (it dominates small-corpus vectors and makes every
        # cosine close to 1); queries and debiasing use the centred vectors
        wv = WordVectors(vec - vec[len(SPECIALS):].mean(0), words)
        prec = polarity_precision(wv)
        log(verbose, f"[{name}] loss {losses[0]:.3f} -> {losses[-1]:.3f}; same-polarity precision@5 {prec:.2f}")
        for q in ("excellent", "awful", "movie", "loved"):
            log(verbose, f"  nearest to {q!r}: " + ", ".join(f"{w} ({s:.2f})" for w, s in wv.most_similar(q, 4)))
        for a, b, c in (("love", "loved", "like"), ("good", "bad", "great"), ("loved", "hated", "enjoyed")):
            log(verbose, f"  {a} : {b} :: {c} : {wv.analogy(a, b, c)[0][0]}")
        results[name] = {"losses": losses, "polarity_precision": prec, "vectors": wv}
    log(verbose, "debiasing the skip-gram vectors along the polarity axis:")
    results["debias"] = debias(results["skipgram"]["vectors"], verbose)
    if plot:
        show = [w for w in list(POS_ADJ) + list(NEG_ADJ) + NEUTRAL[:8] if w in vocab.stoi]
        wv = results["skipgram"]["vectors"]
        plot_embeddings(np.array([wv[w] for w in show]), show, plot, "skip-gram vectors")
        log(verbose, f"PCA plot -> {plot}")
    return results


if __name__ == "__main__":
    main()
