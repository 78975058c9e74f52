"""Word-vector utilities (INVENTORY F54): cosine similarity, nearest neighbours, analogies
(a : b :: c : ?), a 2-D PCA projection and its plot.

Vectors are the rows of a float array ``(V, D)``; :class:`WordVectors` pairs them with
the words so queries can use strings.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cosine_similarity", "nearest_neighbors", "analogy", "pca_project", "plot_embeddings", "WordVectors"]


def _vectors(x, who, name="vectors"):
    from oxinet.tensor import Tensor

    a = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{who}: '{name}' must be numeric, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def cosine_similarity(u, v, eps: float = 1e-12) -> np.ndarray:
    """u.v / (||u|| ||v||) over the last axis, broadcasting the others (F54)."""
    u, v = _vectors(u, "cosine_similarity", "u"), _vectors(v, "cosine_similarity", "v")
    if u.shape[-1:] != v.shape[-1:]:
        raise ValueError(f"cosine_similarity: 'u' has shape {u.shape} but 'v' has shape {v.shape}; "
                         "the last axes must match")
    num = (u * v).sum(-1)
    den = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
    return num / np.maximum(den, eps)


def nearest_neighbors(vectors, query, k: int = 5, exclude=()):
    """Indices and cosine similarities of the ``k`` rows of ``vectors`` most similar to
    ``query`` (a vector ``(D,)`` or a row index), best first, skipping ``exclude``
    (and the query row itself when it is an index)."""
    who = "nearest_neighbors"
    e = _vectors(vectors, who)
    if e.ndim != 2:
        raise ValueError(f"{who}: 'vectors' must be (V, D), got shape {e.shape}")
    excl = set(int(i) for i in exclude)
    if np.ndim(query) == 0:
        q = int(query)
        if not 0 <= q < e.shape[0]:
            raise ValueError(f"{who}: 'query' index {q} is out of range for {e.shape[0]} vectors")
        excl.add(q)
        query = e[q]
    q = _vectors(query, who, "query")
    if q.shape != (e.shape[1],):
        raise ValueError(f"{who}: 'query' has shape {q.shape} but vectors are {e.shape[1]}-dimensional")
    sims = cosine_similarity(e, q[None, :])
    if excl:
        sims = sims.copy()
        sims[list(excl)] = -np.inf
    order = np.argsort(-sims, kind="stable")[: max(0, min(k, e.shape[0] - len(excl)))]
    return order, sims[order]


def analogy(vectors, a: int, b: int, c: int, k: int = 1, exclude_inputs: bool = True):
    """Solve a : b :: c : ? (man : woman :: king : queen) by the row maximising
    cos(e_w, e_b - e_a + e_c) (F54, Mikolov). The three query rows are skipped unless
    ``exclude_inputs=False``. Returns ``(indices, similarities)`` of the ``k`` best."""
    e = _vectors(vectors, "analogy")
    target = e[b] - e[a] + e[c]
    return nearest_neighbors(e, target, k, exclude=(a, b, c) if exclude_inputs else ())


def pca_project(vectors, n_components: int = 2):
    """Coordinates of the centred rows on their ``n_components`` principal axes (by SVD).
    Returns ``(coords (V, n_components), explained_variance_ratio)``."""
    who = "pca_project"
    e = _vectors(vectors, who)
    if e.ndim != 2:
        raise ValueError(f"{who}: 'vectors' must be (V, D), got shape {e.shape}")
    if not 1 <= n_components <= min(e.shape):
        raise ValueError(f"{who}: 'n_components' must be in [1, {min(e.shape)}], got {n_components}")
    x = e - e.mean(0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    # a fixed sign per axis (largest |loading| positive) so the plot does not flip between runs
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)])
    signs[signs == 0] = 1
    coords = (u * s * signs)[:, :n_components]
    var = s**2
    return coords, var[:n_components] / max(var.sum(), 1e-300)


def plot_embeddings(vectors, words, path, title: str = "PCA of word vectors"):
    """Scatter the 2-D PCA projection of ``vectors`` labelled with ``words`` into a PNG
    (matplotlib when installed, else a plain dot plot without labels). Returns the coords."""
    coords, ratio = pca_project(vectors, 2)
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        from oxinet.text.png import scatter_png

        scatter_png(coords, path)
        return coords
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(coords[:, 0], coords[:, 1], s=8)
    for (x, y), w in zip(coords, words):
        ax.annotate(str(w), (x, y), fontsize=8)
    ax.set_title(f"{title} ({100 * ratio.sum():.0f}% variance)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return coords


class WordVectors:
    """Word vectors ``(V, D)`` with their words, queried by string."""

    def __init__(self, vectors, words):
        self.vectors = _vectors(vectors, "WordVectors")
        self.words = list(words)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"WordVectors: 'vectors' has shape {self.vectors.shape} but there are "
                             f"{len(self.words)} words")
        self.index = {w: i for i, w in enumerate(self.words)}

    def _i(self, w):
        try:
            return self.index[w]
        except KeyError:
            raise KeyError(f"WordVectors: {w!r} is not in the vocabulary") from None

    def __getitem__(self, w):
        return self.vectors[self._i(w)]

    def __contains__(self, w):
        return w in self.index

    def similarity(self, w1, w2) -> float:
        return float(cosine_similarity(self[w1], self[w2]))

    def most_similar(self, word, k: int = 5):
        idx, sims = nearest_neighbors(self.vectors, self._i(word), k)
        return [(self.words[i], float(s)) for i, s in zip(idx, sims)]

    def analogy(self, a, b, c, k: int = 1):
        """a : b :: c : ? as a list of (word, similarity)."""
        idx, sims = analogy(self.vectors, self._i(a), self._i(b), self._i(c), k)
        return [(self.words[i], float(s)) for i, s in zip(idx, sims)]
