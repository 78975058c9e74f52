"""Message-passing layers and graph-level readouts."""

from __future__ import annotations

import numpy as np

from oxinet import nn
from oxinet.gnn.functional import gather_rows, scatter_add, scatter_mean
from oxinet.gnn.graph import gcn_norm, validate_edge_index
from oxinet.tensor import Tensor, cat


class GCNConv(nn.Module):
    """Graph convolution (Kipf & Welling): ``H' = D^-1/2 (A + I) D^-1/2 H W + b``.

    forward(x (N, in_features), edge_index (2, E)) -> (N, out_features). The normalised
    edge list is computed per call from ``edge_index`` (cheap next to the products).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, self_loops: bool = True):
        super().__init__()
        self.lin = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(np.zeros(out_features, np.float32)) if bias else None
        self.self_loops = self_loops

    def forward(self, x: Tensor, edge_index) -> Tensor:
        n = x.shape[0]
        e, w = gcn_norm(validate_edge_index(edge_index, n, "GCNConv"), n, self.self_loops)
        h = self.lin(x)
        messages = gather_rows(h, e[0]) * Tensor(w[:, None].astype(h.dtype))
        out = scatter_add(messages, e[1], n)
        return out + self.bias if self.bias is not None else out


class EdgeNodeLayer(nn.Module):
    """One round of I2DL's message passing (F76): node -> edge, then edge -> node.

    edge update:  e'_ij = MLP_e([h_i, h_j, e_ij])   (shared across the graph)
    node update:  h'_j  = MLP_v([h_j, AGG_{i -> j} e'_ij])   with AGG 'sum' or 'mean'
    (order-invariant). forward(x (N, node_dim), edge_index (2, E), edge_attr (E, edge_dim))
    -> (x' (N, node_out), edge_attr' (E, edge_out)). Edge features may be omitted
    (``edge_dim=0``, ``edge_attr=None``).
    """

    def __init__(self, node_dim: int, edge_dim: int, node_out: int, edge_out: int, hidden: int = 32,
                 aggr: str = "sum"):
        super().__init__()
        if aggr not in ("sum", "mean"):
            raise ValueError(f"EdgeNodeLayer: 'aggr' must be 'sum' or 'mean', got {aggr!r}")
        self.aggr = aggr
        self.edge_dim = edge_dim
        self.edge_mlp = nn.Sequential(nn.Linear(2 * node_dim + edge_dim, hidden), nn.ReLU(), nn.Linear(hidden, edge_out))
        self.node_mlp = nn.Sequential(nn.Linear(node_dim + edge_out, hidden), nn.ReLU(), nn.Linear(hidden, node_out))

    def forward(self, x: Tensor, edge_index, edge_attr: Tensor | None = None):
        n = x.shape[0]
        e = validate_edge_index(edge_index, n, "EdgeNodeLayer")
        parts = [gather_rows(x, e[0]), gather_rows(x, e[1])]
        if self.edge_dim:
            if edge_attr is None or tuple(edge_attr.shape) != (e.shape[1], self.edge_dim):
                got = None if edge_attr is None else tuple(edge_attr.shape)
                raise ValueError(f"EdgeNodeLayer: 'edge_attr' must have shape ({e.shape[1]}, {self.edge_dim}), got {got}")
            parts.append(edge_attr)
        edges = self.edge_mlp(cat(parts, dim=1))
        agg = scatter_add(edges, e[1], n) if self.aggr == "sum" else scatter_mean(edges, e[1], n)
        return self.node_mlp(cat([x, agg], dim=1)), edges


def global_sum_pool(x: Tensor, batch, num_graphs: int | None = None) -> Tensor:
    """Graph-level readout: sum of the node rows of each graph. batch (N,) graph ids."""
    b = np.asarray(batch, np.int64)
    return scatter_add(x, b, int(b.max()) + 1 if num_graphs is None else num_graphs)


def global_mean_pool(x: Tensor, batch, num_graphs: int | None = None) -> Tensor:
    """Graph-level readout: mean of the node rows of each graph."""
    b = np.asarray(batch, np.int64)
    return scatter_mean(x, b, int(b.max()) + 1 if num_graphs is None else num_graphs)
