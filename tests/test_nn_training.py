"""Proof that it trains: MLPs on generated 2-D data reach stated accuracies; a full model
passes a gradient check including its L2 penalty (course F16 tip)."""

from __future__ import annotations

import numpy as np

import oxinet as ox
from oxinet import nn, optim
from oxinet.nn import functional as F
from oxinet.nn.utils import l2_penalty


def spiral(n_per_class=100, classes=3, seed=0):
    """The classic spiral: classes interleaved arms with angular noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for j in range(classes):
        r = np.linspace(0.0, 1, n_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, n_per_class) + rng.standard_normal(n_per_class) * 0.2
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(n_per_class, j))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def flower(m=400, petals=4, seed=1):
    """The course's planar "flower" data set: two classes of petals, labels 0/1."""
    rng = np.random.default_rng(seed)
    n = m // 2
    X = np.zeros((m, 2))
    Y = np.zeros(m)
    for j in range(2):
        ix = range(n * j, n * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, n) + rng.standard_normal(n) * 0.2
        r = petals * np.sin(4 * t) + rng.standard_normal(n) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        Y[ix] = j
    return X.astype(np.float32), Y.astype(np.float32)


def test_mlp_learns_the_spiral_to_97_percent():
    ox.manual_seed(0)
    X, y = spiral()
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    xt = ox.tensor(X)
    first = None
    for it in range(250):
        opt.zero_grad()
        loss = loss_fn(model(xt), y)
        loss.backward()
        opt.step()
        if first is None:
            first = loss.item()
    assert abs(first - np.log(3)) < 0.3  # I2DL sanity check: initial loss ~ log(C)
    with ox.no_grad():
        acc = (model(xt).argmax(1).numpy() == y).mean()
    assert acc >= 0.97, acc


def test_course_shallow_tanh_network_on_flower_with_minibatch_sgd_and_batchnorm():
    ox.manual_seed(0)
    X, Y = flower()
    model = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.05), nn.Linear(16, 1))
    opt = optim.SGD(model.parameters(), lr=0.3, momentum=0.9, ewma=True)
    sched = optim.lr_scheduler.InverseTimeLR(opt, decay_rate=0.01)
    gen = ox.random.generator()
    for epoch in range(100):
        perm = gen.permutation(len(X))
        for start in range(0, len(X), 64):
            idx = perm[start:start + 64]
            opt.zero_grad()
            logits = model(ox.tensor(X[idx])).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logits, ox.tensor(Y[idx]))
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with ox.no_grad():
        pred = (model(ox.tensor(X)).reshape(-1).numpy() > 0).astype(np.float32)
    acc = (pred == Y).mean()
    assert acc >= 0.85, acc  # the course reaches ~90% on this data set


def test_whole_model_gradcheck_with_l2_penalty():
    ox.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.LayerNorm(4), nn.GELU(),
                          nn.Linear(4, 2)).double()
    x = ox.randn(6, 3, dtype=ox.float64)
    y = np.array([0, 1, 1, 0, 1, 0])

    def J():
        return F.cross_entropy(model(x), y) + l2_penalty(model.named_parameters(), lam=0.1 / 6)

    assert ox.gradcheck(J, [], params=model.parameters())
