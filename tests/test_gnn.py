"""oxinet.gnn: gather/scatter on the embedding kernels, GCNConv, the edge/node message
passing layer, readouts; against dense NumPy references, gradient checks, invariances."""

import numpy as np
import pytest

import oxinet
from oxinet import gnn, nn


def t64(a, grad=True):
    return oxinet.tensor(np.asarray(a, np.float64), dtype=oxinet.float64, requires_grad=grad)


def small_graph(seed=0, n=7, e=15):
    rng = np.random.default_rng(seed)
    edges = np.stack([rng.integers(0, n, e), rng.integers(0, n, e)])
    return n, edges


def test_gather_and_scatter_match_numpy_and_repeated_indices():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3))
    idx = np.array([4, 0, 4, 2, 4, 0])
    np.testing.assert_array_equal(gnn.gather_rows(t64(x), idx).numpy(), x[idx])
    vals = rng.standard_normal((6, 3))
    ref = np.zeros((5, 3))
    np.add.at(ref, idx, vals)
    np.testing.assert_allclose(gnn.scatter_add(t64(vals), idx, 5).numpy(), ref, rtol=1e-12)
    mean = gnn.scatter_mean(t64(vals), idx, 5).numpy()
    counts = np.bincount(idx, minlength=5)
    np.testing.assert_allclose(mean[counts > 0], ref[counts > 0] / counts[counts > 0, None])
    assert np.all(mean[counts == 0] == 0)


def test_gather_scatter_gradients():
    rng = np.random.default_rng(2)
    idx = np.array([1, 3, 1, 0, 3, 3])
    assert oxinet.gradcheck(lambda x: gnn.gather_rows(x, idx) * 1.0, [t64(rng.standard_normal((4, 2)))])
    assert oxinet.gradcheck(lambda v: gnn.scatter_add(v, idx, 5), [t64(rng.standard_normal((6, 2)))])
    assert oxinet.gradcheck(lambda v: gnn.scatter_mean(v, idx, 5), [t64(rng.standard_normal((6, 2)))])


def dense_gcn(x, edges, w, b):
    n = x.shape[0]
    a = np.zeros((n, n))
    for s, d in edges.T:
        if s != d:
            a[d, s] = 1.0  # messages flow source -> target
    a += np.eye(n)
    deg = a.sum(1)
    norm = a / np.sqrt(deg[:, None] * deg[None, :])
    return norm @ x @ w.T + b


def test_gcnconv_matches_dense_formula_and_gradcheck():
    n, edges = small_graph()
    edges = gnn.to_undirected(edges)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 4))
    conv = gnn.GCNConv(4, 3).to(oxinet.float64)
    conv.bias.numpy()[...] = rng.standard_normal(3)
    got = conv(t64(x, grad=False), edges).numpy()
    ref = dense_gcn(x, edges, conv.lin.weight.numpy(), conv.bias.numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    assert oxinet.gradcheck(lambda xx: conv(xx, edges), [t64(x)], params=conv.named_parameters())


def test_edge_node_layer_gradcheck_with_and_without_edge_features():
    n, edges = small_graph(4)
    rng = np.random.default_rng(5)
    for edge_dim, aggr in ((2, "sum"), (0, "mean")):
        oxinet.manual_seed(0)
        layer = gnn.EdgeNodeLayer(3, edge_dim, node_out=4, edge_out=2, hidden=5, aggr=aggr).to(oxinet.float64)
        x = t64(rng.standard_normal((n, 3)))
        ea = t64(rng.standard_normal((edges.shape[1], edge_dim))) if edge_dim else None
        inputs = [x, ea] if edge_dim else [x]
        fn = (lambda xx, ee: layer(xx, edges, ee)) if edge_dim else (lambda xx: layer(xx, edges))
        assert oxinet.gradcheck(fn, inputs, params=layer.named_parameters())


def test_permutation_equivariance_and_edge_order_invariance():
    n, edges = small_graph(6, n=9, e=25)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    oxinet.manual_seed(1)
    layer = gnn.EdgeNodeLayer(3, 0, node_out=4, edge_out=2)
    base, _ = layer(oxinet.tensor(x), gnn.canonical_edges(edges))
    perm = rng.permutation(n)  # new node i is old node perm[i]
    inv = np.argsort(perm)
    moved, _ = layer(oxinet.tensor(x[perm]), gnn.canonical_edges(inv[edges]))
    np.testing.assert_allclose(moved.numpy(), base.numpy()[perm], rtol=1e-5, atol=1e-6)
    shuffled = edges[:, rng.permutation(edges.shape[1])]
    again, _ = layer(oxinet.tensor(x), gnn.canonical_edges(shuffled))
    np.testing.assert_array_equal(again.numpy(), base.numpy())  # same bits for any edge order


def test_gcn_classifies_communities_better_than_features_alone():
    x, edges, y = gnn.community_graph(num_nodes=240, num_communities=4, seed=0)
    rng = np.random.default_rng(0)
    train = np.zeros(len(y), bool)
    train[rng.permutation(len(y))[:80]] = True

    class GCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = gnn.GCNConv(8, 16), gnn.GCNConv(16, 4)

        def forward(self, xx):
            return self.c2(self.c1(xx, edges).relu(), edges)

    def fit(model, forward):
        opt = oxinet.optim.Adam(model.parameters(), lr=0.02, weight_decay=5e-4)
        xt, yt = oxinet.tensor(x), oxinet.tensor(y)
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(forward(xt)[train], yt[train]).backward()
            opt.step()
        pred = forward(xt).numpy().argmax(1)
        return (pred[~train] == y[~train]).mean()

    oxinet.manual_seed(0)
    gcn = GCN()
    acc_gcn = fit(gcn, gcn)
    oxinet.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    acc_mlp = fit(mlp, mlp)
    assert acc_gcn >= 0.9, acc_gcn
    assert acc_gcn > acc_mlp + 0.15, (acc_gcn, acc_mlp)


def test_readouts_and_graph_classification():
    # two families of graphs: rings (every degree 2) and stars (one hub); node feature 1
    graphs, labels = [], []
    for size in range(5, 13):
        ring = np.stack([np.arange(size), (np.arange(size) + 1) % size])
        star = np.stack([np.zeros(size - 1, int), np.arange(1, size)])
        graphs += [gnn.to_undirected(ring), gnn.to_undirected(star)]
        labels += [0, 1]
    xs, es, batch, offset = [], [], [], 0
    for g_id, e in enumerate(graphs):
        n = int(e.max()) + 1
        xs.append(np.ones((n, 1), np.float32))
        es.append(e + offset)
        batch.append(np.full(n, g_id))
        offset += n
    x, e, batch = np.concatenate(xs), np.concatenate(es, axis=1), np.concatenate(batch)
    pooled = gnn.global_sum_pool(oxinet.tensor(x), batch).numpy()
    np.testing.assert_array_equal(pooled[:, 0], np.bincount(batch))
    oxinet.manual_seed(0)
    layer = gnn.EdgeNodeLayer(1, 0, node_out=8, edge_out=8, aggr="sum")
    head = nn.Linear(8, 2)
    opt = oxinet.optim.Adam(list(layer.parameters()) + list(head.parameters()), lr=0.02)
    y = oxinet.tensor(np.array(labels))
    for _ in range(200):
        opt.zero_grad()
        h, _ = layer(oxinet.tensor(x), e)
        logits = head(gnn.global_mean_pool(h.relu(), batch))
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
    assert (logits.numpy().argmax(1) == np.array(labels)).mean() == 1.0


def test_bad_input():
    x = oxinet.zeros(4, 3)
    conv = gnn.GCNConv(3, 2)
    with pytest.raises(ValueError, match=r"'edge_index' must have shape \(2, E\)"):
        conv(x, np.zeros((3, 5), np.int64))
    with pytest.raises(ValueError, match=r"entries must lie in \[0, 4\)"):
        conv(x, np.array([[0, 1], [2, 9]]))
    with pytest.raises(TypeError, match="'edge_index' must hold integers"):
        conv(x, np.array([[0.0, 1.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="'values' has shape"):
        gnn.scatter_add(oxinet.zeros(3, 2), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match="'aggr'"):
        gnn.EdgeNodeLayer(2, 0, 2, 2, aggr="max")
