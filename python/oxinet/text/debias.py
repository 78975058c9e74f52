"""Debiasing word vectors (Bolukbasi et al.; INVENTORY F59): find a bias direction g,
neutralise words that should carry no bias, equalise definitional pairs.

    neutralize(e)       = e - (e.g / ||g||^2) g
    equalize(w1, w2):   mu = (e1 + e2)/2,  mu_B = proj_g(mu),  mu_perp = mu - mu_B
                        e_i,B = proj_g(e_i)
                        e_i' = mu_perp + sqrt(|1 - ||mu_perp||^2|) (e_i,B - mu_B) / ||e_i,B - mu_B||

F59 writes the denominator as ||e_i - mu_perp - mu_B||; that is the erratum of the course's
programming exercise (it leaves the pair off the unit sphere). The paper normalises the
bias components themselves, as here, so for unit-length inputs both results have unit
length, opposite bias components and the same distance to every neutralised word.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bias_direction", "project_on", "neutralize", "equalize"]


def _f(x, who, name):
    a = np.asarray(x, np.float64)
    if a.ndim < 1:
        raise ValueError(f"{who}: '{name}' must be a vector, got a scalar")
    return a


def bias_direction(pairs, method: str = "mean") -> np.ndarray:
    """The bias axis from definitional pairs ``[(e_he, e_she), (e_male, e_female), ...]``
    (an array ``(P, 2, D)`` or a list of vector pairs): the mean of ``e_a - e_b``
    (``method="mean"``, the course's average of differences) or the first principal
    component of the pair-centred vectors (``"pca"``, the paper's choice, oriented like
    the mean difference)."""
    p = np.asarray(pairs, np.float64)
    if p.ndim != 3 or p.shape[1] != 2:
        raise ValueError(f"bias_direction: 'pairs' must be (P, 2, D), got shape {p.shape}")
    diff = p[:, 0] - p[:, 1]
    g = diff.mean(0)
    if method == "mean":
        return g
    if method != "pca":
        raise ValueError(f"bias_direction: 'method' must be 'mean' or 'pca', got {method!r}")
    centred = (p - p.mean(1, keepdims=True)).reshape(-1, p.shape[2])
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    d = vt[0]
    return d if d @ g >= 0 else -d


def project_on(e, g) -> np.ndarray:
    """The component of ``e`` (..., D) along ``g`` (D,): (e.g/||g||^2) g."""
    e, g = _f(e, "project_on", "e"), _f(g, "project_on", "g")
    gg = float(g @ g)
    if gg == 0:
        raise ValueError("project_on: 'g' is the zero vector")
    return (e @ g / gg)[..., None] * g


def neutralize(e, g) -> np.ndarray:
    """``e`` minus its component along the bias direction ``g`` (works on rows (..., D))."""
    return _f(e, "neutralize", "e") - project_on(e, g)


def equalize(e1, e2, g):
    """Make the pair symmetric about the non-bias subspace (see the module formula).
    Inputs are expected to have unit length (normalise first). Returns ``(e1', e2')``."""
    e1, e2, g = _f(e1, "equalize", "e1"), _f(e2, "equalize", "e2"), _f(g, "equalize", "g")
    if e1.shape != e2.shape or e1.shape[-1:] != g.shape:
        raise ValueError(f"equalize: 'e1' {e1.shape}, 'e2' {e2.shape} and 'g' {g.shape} must share the last axis")
    mu = (e1 + e2) / 2
    mu_b = project_on(mu, g)
    mu_perp = mu - mu_b
    scale = np.sqrt(np.abs(1.0 - (mu_perp * mu_perp).sum(-1, keepdims=True)))
    out = []
    for e in (e1, e2):
        d = project_on(e, g) - mu_b
        n = np.linalg.norm(d, axis=-1, keepdims=True)
        out.append(mu_perp + scale * d / np.where(n > 0, n, 1.0))
    return out[0], out[1]
