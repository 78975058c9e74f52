"""Node classification on a generated community graph with a two-layer GCN, compared with
an MLP that sees the node features only (I2DL's graph neural networks, F76).

    python examples/gnn_communities.py
"""

from __future__ import annotations

import numpy as np

import oxinet
from oxinet import gnn, nn


class GCN(nn.Module):
    def __init__(self, in_features: int, hidden: int, classes: int):
        super().__init__()
        self.c1, self.c2 = gnn.GCNConv(in_features, hidden), gnn.GCNConv(hidden, classes)
        self.drop = nn.Dropout(0.3)

    def forward(self, x, edges):
        return self.c2(self.drop(self.c1(x, edges).relu()), edges)


def main(num_nodes: int = 600, communities: int = 5, labelled: float = 0.2, epochs: int = 200, seed: int = 0) -> dict:
    x, edges, y = gnn.community_graph(num_nodes, communities, p_in=0.06, p_out=0.002, seed=seed)
    rng = np.random.default_rng(seed)
    train = np.zeros(num_nodes, bool)
    train[rng.permutation(num_nodes)[: int(labelled * num_nodes)]] = True
    xt, yt = oxinet.tensor(x), oxinet.tensor(y)
    results = {}
    for name in ("gcn", "mlp"):
        oxinet.manual_seed(seed)
        if name == "gcn":
            model = GCN(x.shape[1], 32, communities)
            forward = lambda: model(xt, edges)  # noqa: E731
        else:
            model = nn.Sequential(nn.Linear(x.shape[1], 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, communities))
            forward = lambda: model(xt)  # noqa: E731
        opt = oxinet.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
        for _ in range(epochs):
            model.train()
            opt.zero_grad()
            nn.functional.cross_entropy(forward()[train], yt[train]).backward()
            opt.step()
        model.eval()
        with oxinet.no_grad():
            pred = forward().numpy().argmax(1)
        results[name] = float((pred[~train] == y[~train]).mean())
    print(f"{num_nodes} nodes, {edges.shape[1]} directed edges, {communities} communities, "
          f"{train.sum()} labelled")
    print(f"held-out accuracy: GCN {results['gcn']:.3f}, MLP on features only {results['mlp']:.3f}")
    return results


if __name__ == "__main__":
    main()
