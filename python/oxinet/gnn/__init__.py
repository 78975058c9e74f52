"""Graph neural networks on sparse edge lists (I2DL's message passing, INVENTORY F76).

A graph is ``x`` (N, F) node features plus ``edge_index`` (2, E) int64 with rows
(source, target): messages flow from ``edge_index[0]`` to ``edge_index[1]``. Gathering
node rows and scatter-adding messages run on oxinet's embedding kernels, which sum in a
fixed order; :func:`canonical_edges` sorts the edge list so that the result does not
depend on the order in which edges were given (the aggregation is order-invariant, bit
for bit).
"""

from oxinet.gnn.functional import gather_rows, scatter_add, scatter_mean
from oxinet.gnn.graph import (
    add_self_loops, canonical_edges, community_graph, gcn_norm, to_undirected, validate_edge_index,
)
from oxinet.gnn.layers import EdgeNodeLayer, GCNConv, global_mean_pool, global_sum_pool

__all__ = [
    "gather_rows", "scatter_add", "scatter_mean", "add_self_loops", "canonical_edges", "community_graph",
    "gcn_norm", "to_undirected", "validate_edge_index", "EdgeNodeLayer", "GCNConv", "global_mean_pool",
    "global_sum_pool",
]
