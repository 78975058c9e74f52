"""Edge-list utilities and a generated community graph."""

from __future__ import annotations

import numpy as np


def validate_edge_index(edge_index, num_nodes: int, who: str = "edge_index") -> np.ndarray:
    """``edge_index`` as a (2, E) int64 array with every entry in [0, num_nodes)."""
    e = np.asarray(edge_index)
    if e.ndim != 2 or e.shape[0] != 2:
        raise ValueError(f"{who}: 'edge_index' must have shape (2, E), got {e.shape}")
    if e.size and not np.issubdtype(e.dtype, np.integer):
        raise TypeError(f"{who}: 'edge_index' must hold integers, got dtype {e.dtype}")
    e = e.astype(np.int64, copy=False)
    if e.size and (e.min() < 0 or e.max() >= num_nodes):
        raise ValueError(f"{who}: 'edge_index' entries must lie in [0, {num_nodes}), got range "
                         f"[{e.min()}, {e.max()}]")
    return e


def canonical_edges(edge_index, edge_attr=None):
    """Sort edges by (target, source) so that aggregation sums in an order that does not
    depend on how the edges were listed. Returns ``edge_index`` (and ``edge_attr``) permuted."""
    e = np.asarray(edge_index, np.int64)
    order = np.lexsort((e[0], e[1]))
    if edge_attr is None:
        return e[:, order]
    return e[:, order], np.asarray(edge_attr)[order]


def to_undirected(edge_index) -> np.ndarray:
    """Both directions of every edge, duplicates removed, in canonical order."""
    e = np.asarray(edge_index, np.int64)
    both = np.concatenate([e, e[::-1]], axis=1)
    both = np.unique(both, axis=1)
    return canonical_edges(both)


def add_self_loops(edge_index, num_nodes: int) -> np.ndarray:
    """Append an edge i -> i for every node (existing self loops are kept once)."""
    e = np.asarray(edge_index, np.int64)
    e = e[:, e[0] != e[1]]
    loops = np.arange(num_nodes, dtype=np.int64)
    return canonical_edges(np.concatenate([e, np.stack([loops, loops])], axis=1))


def gcn_norm(edge_index, num_nodes: int, self_loops: bool = True):
    """Kipf & Welling's symmetric normalisation: returns (edge_index, weight) with
    weight_e = 1 / sqrt(deg(src) deg(dst)), degrees counted on the (self-looped) graph,
    so that aggregating gives D^-1/2 (A + I) D^-1/2 X."""
    e = add_self_loops(edge_index, num_nodes) if self_loops else canonical_edges(edge_index)
    deg = np.bincount(e[1], minlength=num_nodes).astype(np.float64)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    return e, inv_sqrt[e[0]] * inv_sqrt[e[1]]


def community_graph(num_nodes: int = 200, num_communities: int = 4, p_in: float = 0.1, p_out: float = 0.005,
                    feature_dim: int = 8, feature_noise: float = 2.0, seed: int = 0):
    """A stochastic block model for node classification.

    Nodes get a community label uniformly at random; each pair is linked with probability
    ``p_in`` inside a community and ``p_out`` across. Node features are the community's
    random centre (unit Gaussian in ``feature_dim`` dims) plus Gaussian noise of standard
    deviation ``feature_noise``, so features alone classify poorly and the graph's
    structure carries the rest. Returns (x (N, F) float32, edge_index (2, E) int64
    undirected and canonical, labels (N,) int64).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_communities, num_nodes)
    same = y[:, None] == y[None, :]
    prob = np.where(same, p_in, p_out)
    upper = np.triu(rng.random((num_nodes, num_nodes)) < prob, k=1)
    src, dst = np.nonzero(upper)
    edges = to_undirected(np.stack([src, dst]))
    centres = rng.standard_normal((num_communities, feature_dim))
    x = centres[y] + feature_noise * rng.standard_normal((num_nodes, feature_dim))
    return x.astype(np.float32), edges, y.astype(np.int64)
