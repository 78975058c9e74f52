"""Embedding utilities, word2vec/GloVe (gradient checks, learning) and debiasing."""

import numpy as np
import pytest

from helpers import check_grad
from oxinet.text import (
    WordVectors, analogy, bias_direction, cooccurrence_matrix, cosine_similarity, equalize, glove_loss_grad,
    glove_weight, nearest_neighbors, neutralize, pca_project, sgns_loss_grad, skipgram_pairs,
    subsample_keep_prob, train_glove, train_skipgram, unigram_noise,
)

WORDS = ["man", "woman", "king", "queen", "apple", "boy", "girl"]
VECS = np.array([
    [1.0, 0.0, 0.1, 0.0],    # man
    [-1.0, 0.0, 0.1, 0.0],   # woman
    [1.0, 1.0, 0.0, 0.1],    # king
    [-1.0, 1.0, 0.0, 0.1],   # queen
    [0.0, 0.0, 1.0, 1.0],    # apple
    [0.9, -0.2, 0.1, 0.0],   # boy
    [-0.9, -0.2, 0.1, 0.0],  # girl
])


def test_cosine_similarity_hand():
    assert cosine_similarity([1, 0], [0, 1]) == pytest.approx(0.0)
    assert cosine_similarity([1, 1], [2, 2]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [-3, 0]) == pytest.approx(-1.0)
    assert cosine_similarity([3, 4], [4, 3]) == pytest.approx(24 / 25)
    got = cosine_similarity(VECS[:, None], VECS[None])
    assert got.shape == (7, 7) and np.allclose(np.diag(got), 1)
    with pytest.raises(ValueError, match="'u'"):
        cosine_similarity([1, 2], [1, 2, 3])


def test_analogy_and_neighbours():
    wv = WordVectors(VECS, WORDS)
    assert wv.analogy("man", "woman", "king")[0][0] == "queen"
    assert wv.analogy("woman", "man", "queen")[0][0] == "king"
    assert wv.analogy("man", "woman", "boy")[0][0] == "girl"
    idx, sims = nearest_neighbors(VECS, 0, k=2)
    assert idx[0] == 5 and 0 not in idx.tolist()
    assert sims[0] == pytest.approx(cosine_similarity(VECS[0], VECS[5]))
    # with the inputs allowed, the plain argmax may return one of them
    i, _ = analogy(VECS, 0, 1, 2, exclude_inputs=False)
    assert i[0] in (1, 3)
    with pytest.raises(KeyError, match="pear"):
        wv["pear"]
    with pytest.raises(ValueError, match="'query'"):
        nearest_neighbors(VECS, 99)


def test_pca_project():
    rng = np.random.default_rng(0)
    t = rng.normal(size=50)
    pts = np.outer(t, [1.0, 2.0, -1.0]) + 1e-6 * rng.normal(size=(50, 3))
    coords, ratio = pca_project(pts, 2)
    assert coords.shape == (50, 2) and ratio[0] > 0.999
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.999
    with pytest.raises(ValueError, match="'n_components'"):
        pca_project(pts, 5)


def test_plot_embeddings_writes_png(tmp_path):
    from oxinet.text import embeddings

    p = tmp_path / "e.png"
    coords = embeddings.plot_embeddings(VECS, WORDS, p)
    assert coords.shape == (7, 2) and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- debiasing ---------------------------------------------------------------------------


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_bias_direction_and_neutralize():
    rng = np.random.default_rng(1)
    g_true = _unit(rng.normal(size=10))
    base = rng.normal(size=(3, 10))
    pairs = np.stack([base + g_true, base - g_true], 1)
    g = bias_direction(pairs)
    assert np.allclose(g, 2 * g_true)
    gp = bias_direction(pairs, "pca")
    assert np.allclose(gp, g_true)
    words = rng.normal(size=(5, 10))
    n = neutralize(words, g)
    assert np.abs(n @ g).max() < 1e-12
    # only the bias component changed
    assert np.allclose(n - words, -(words @ g / (g @ g))[:, None] * g)
    with pytest.raises(ValueError, match="'pairs'"):
        bias_direction(rng.normal(size=(3, 10)))


def test_equalize_properties():
    rng = np.random.default_rng(2)
    g = rng.normal(size=8)
    e1, e2 = _unit(rng.normal(size=8)), _unit(rng.normal(size=8))
    a, b = equalize(e1, e2, g)
    # symmetric about the non-bias subspace: same non-bias part, opposite bias parts, unit norm
    assert np.allclose(neutralize(a, g), neutralize(b, g))
    assert a @ g == pytest.approx(-(b @ g))
    assert np.linalg.norm(a) == pytest.approx(1) and np.linalg.norm(b) == pytest.approx(1)
    # so any neutralised word is equidistant from both
    w = neutralize(_unit(rng.normal(size=8)), g)
    assert np.linalg.norm(a - w) == pytest.approx(np.linalg.norm(b - w))
    assert cosine_similarity(a, w) == pytest.approx(cosine_similarity(b, w))
    # the bias components keep the original orientation (e1 stays on e1's side)
    assert np.sign(a @ g) == np.sign((e1 - e2) @ g)
    # F59's literal denominator ||e1 - mu_perp - mu_B|| (the erratum) leaves the unit sphere
    mu = (e1 + e2) / 2
    mu_b = (mu @ g / (g @ g)) * g
    mu_perp = mu - mu_b
    e1b = (e1 @ g / (g @ g)) * g
    literal = np.sqrt(abs(1 - mu_perp @ mu_perp)) * (e1b - mu_b) / np.linalg.norm(e1 - mu_perp - mu_b) + mu_perp
    assert abs(np.linalg.norm(literal) - 1) > 1e-3


# --- word2vec ----------------------------------------------------------------------------


def test_noise_and_subsampling_formulas():
    c = np.array([16.0, 1.0, 0.0, 81.0])
    p = unigram_noise(c)
    w = c**0.75
    assert np.allclose(p, w / w.sum())
    keep = subsample_keep_prob(c, t=0.05)
    f = c / c.sum()
    assert keep[0] == pytest.approx(np.sqrt(0.05 / f[0]))
    assert keep[2] == 1.0 and (keep <= 1).all()


def test_skipgram_pairs_exact():
    c, t = skipgram_pairs([[1, 2, 3], [4, 5]], window=1, dynamic_window=False, seed=0)
    got = sorted(zip(c.tolist(), t.tolist()))
    assert got == sorted([(1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4)])
    c2, _ = skipgram_pairs([[1, 2, 3, 4, 5]], window=2, dynamic_window=False, seed=0)
    assert c2.size == 2 * (4 + 3)


def test_sgns_gradcheck():
    rng = np.random.default_rng(0)
    E, T = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    c, t = np.array([0, 1, 1, 4]), np.array([2, 3, 0, 1])
    neg = rng.integers(0, 6, size=(4, 2))
    _, dE, dT = sgns_loss_grad(E, T, c, t, neg)
    check_grad(lambda: sgns_loss_grad(E, T, c, t, neg)[0], E, dE)
    check_grad(lambda: sgns_loss_grad(E, T, c, t, neg)[0], T, dT)


def _topic_corpus(n=300, seed=0):
    rng = np.random.default_rng(seed)
    # two topics of 6 words each (ids 1..6 and 7..12); sentences never mix topics
    return [rng.integers(1, 7, size=8) if rng.random() < 0.5 else rng.integers(7, 13, size=8) for _ in range(n)]


def _topic_gap(vectors):
    s = cosine_similarity(vectors[1:13, None], vectors[None, 1:13])
    same = np.kron(np.eye(2), np.ones((6, 6))).astype(bool) & ~np.eye(12, dtype=bool)
    diff = ~np.kron(np.eye(2), np.ones((6, 6))).astype(bool)
    return s[same].mean() - s[diff].mean()


def test_skipgram_learns_topics():
    res = train_skipgram(_topic_corpus(), 13, dim=10, window=2, negatives=4, epochs=4, lr=0.05,
                         subsample=None, seed=0)
    assert res.losses[-1] < res.losses[0]
    assert _topic_gap(res.vectors) > 0.5


# --- GloVe -------------------------------------------------------------------------------


def test_cooccurrence_and_weight():
    X = cooccurrence_matrix([[0, 1, 2]], 3, window=2)
    want = np.array([[0, 1, 0.5], [1, 0, 1], [0.5, 1, 0]])
    assert np.allclose(X, want)
    Xa = cooccurrence_matrix([[0, 1, 2]], 3, window=2, distance_weighting=False, symmetric=False)
    assert np.allclose(Xa, [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    assert np.allclose(glove_weight([0, 50, 100, 300], x_max=100, alpha=0.75), [0, 0.5**0.75, 1, 1])
    with pytest.raises(ValueError, match="'window'"):
        cooccurrence_matrix([[0]], 1, window=0)


def test_glove_gradcheck():
    rng = np.random.default_rng(0)
    W, Wt = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    b, bt = rng.normal(size=5), rng.normal(size=5)
    rows, cols = np.array([0, 1, 2, 2, 4]), np.array([1, 0, 3, 4, 4])
    x = np.array([3.0, 3.0, 150.0, 0.5, 7.0])
    _, dW, dWt, db, dbt = glove_loss_grad(W, Wt, b, bt, rows, cols, x, x_max=10)
    f = lambda: glove_loss_grad(W, Wt, b, bt, rows, cols, x, x_max=10)[0]  # noqa: E731
    for p, g in ((W, dW), (Wt, dWt), (b, db), (bt, dbt)):
        check_grad(f, p, g)
    with pytest.raises(ValueError, match="'x'"):
        glove_loss_grad(W, Wt, b, bt, rows, cols, np.zeros(5))


def test_glove_learns_topics():
    X = cooccurrence_matrix(_topic_corpus(), 13, window=3)
    res = train_glove(X, dim=10, epochs=60, lr=0.1, x_max=20, seed=0)
    assert res.losses[-1] < 0.5 * res.losses[0]
    assert np.allclose(res.vectors, res.W + res.W_tilde)
    assert _topic_gap(res.vectors) > 0.3


def test_bad_inputs():
    E = np.zeros((4, 2))
    with pytest.raises(ValueError, match="'negatives'"):
        sgns_loss_grad(E, E, [0, 1], [1, 2], [0, 1])
    with pytest.raises(ValueError, match="'counts'"):
        unigram_noise([0, 0])
    with pytest.raises(ValueError, match="'window'"):
        skipgram_pairs([[1, 2]], window=0)
    with pytest.raises(ValueError, match="'dim'"):
        train_skipgram([[1, 2]], 3, dim=0)
    with pytest.raises(ValueError, match="'e1'"):
        equalize(np.ones(3), np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="'g'"):
        neutralize(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="'X'"):
        train_glove(np.ones((2, 3)))
    with pytest.raises(TypeError, match="'vectors'"):
        nearest_neighbors(np.array([["a"]]), 0)
