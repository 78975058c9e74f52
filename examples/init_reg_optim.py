"""Course 2 applications on one task (the two-moons data, ``oxinet.data.make_moons``):

1. Initialisation: the same 3-layer ReLU network ([2, 10, 5, 1]) from zeros (symmetry is
   never broken: every unit of a layer stays identical and the net is no better than a
   constant), from large random values (x10: slow, large initial cost) and with He
   initialisation (sqrt(2 / n_prev)).
2. Regularisation: a bigger network ([2, 64, 64, 1]) on a small, noisy training set, without
   regularisation, with L2 (cost + lambda / (2 m) * sum ||W||^2, the course's form) and with
   (inverted) dropout; train vs test accuracy.
3. Optimisers with mini-batches of 64: gradient descent, momentum (beta = 0.9) and Adam
   (F21), same initial weights.

All cost curves go into one PNG (three panels, log-scale cost; without matplotlib the curves
are coloured red, green, blue in the order listed above).

Run: python examples/init_reg_optim.py   (well under a minute)
"""

from __future__ import annotations

import copy
import os

import numpy as np

import oxinet
from oxinet import nn
from oxinet.data import make_moons
from oxinet.vision.draw import plot_curves


def mlp(dims, dropout=0.0):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def initialise(model, how, seed=3):
    rng = np.random.default_rng(seed)
    with oxinet.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                n_prev = m.in_features
                if how == "zeros":
                    w = np.zeros(m.weight.shape)
                elif how == "random":
                    w = rng.standard_normal(m.weight.shape) * 10
                else:
                    w = rng.standard_normal(m.weight.shape) * np.sqrt(2.0 / n_prev)
                m.weight.copy_(w.astype(np.float32))
                m.bias.zero_()
    return model


def bce(model, x, y):
    return nn.functional.binary_cross_entropy_with_logits(model(oxinet.tensor(x)).reshape(-1), oxinet.tensor(y))


def accuracy(model, x, y):
    model.eval()
    with oxinet.no_grad():
        p = model(oxinet.tensor(x)).numpy().reshape(-1) > 0
    model.train()
    return float((p == (y > 0.5)).mean())


def train(model, x, y, opt, epochs, batch_size=None, l2=0.0, seed=0, record_every=1):
    rng = np.random.default_rng(seed)
    m = len(x)
    bs = m if batch_size is None else batch_size
    costs = []
    weights = [mod.weight for mod in model.modules() if isinstance(mod, nn.Linear)]
    for epoch in range(epochs):
        order = rng.permutation(m) if batch_size else np.arange(m)
        for i in range(0, m, bs):
            idx = order[i:i + bs]
            opt.zero_grad()
            loss = bce(model, x[idx], y[idx])
            if l2:
                loss = loss + (l2 / (2 * m)) * sum((w * w).sum() for w in weights)
            loss.backward()
            opt.step()
        if epoch % record_every == 0:
            model.eval()
            with oxinet.no_grad():
                costs.append(float(bce(model, x, y).item()))
            model.train()
    return costs


def main(init_epochs: int = 1500, reg_epochs: int = 1500, opt_epochs: int = 60, out_dir: str = ".",
         seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    oxinet.manual_seed(seed)
    x, y = make_moons(600, noise=0.2, seed=seed)
    x, y = x.astype(np.float32), y.astype(np.float32)
    x_tr, y_tr, x_te, y_te = x[:300], y[:300], x[300:], y[300:]
    out = {"init": {}, "reg": {}, "optim": {}}
    panels = []

    curves = {}
    for how in ("zeros", "random", "he"):
        model = initialise(mlp([2, 10, 5, 1]), how, seed)
        curves[how] = train(model, x_tr, y_tr, oxinet.optim.SGD(model.parameters(), lr=0.05), init_epochs,
                            record_every=10)
        out["init"][how] = {"train": accuracy(model, x_tr, y_tr), "test": accuracy(model, x_te, y_te),
                            "final_cost": curves[how][-1]}
        say(f"init {how:>6}: cost {curves[how][0]:.3f} -> {curves[how][-1]:.3f}, "
            f"train {out['init'][how]['train']:.3f}, test {out['init'][how]['test']:.3f}")
    panels.append(("initialisation", curves))

    xs, ys = make_moons(80, noise=0.35, seed=seed + 1)
    xs, ys = xs.astype(np.float32), ys.astype(np.float32)
    curves = {}
    for name, l2, p in (("none", 0.0, 0.0), ("L2", 0.7, 0.0), ("dropout", 0.0, 0.14)):
        oxinet.manual_seed(seed)
        model = initialise(mlp([2, 64, 64, 1], dropout=p), "he", seed)
        curves[name] = train(model, xs, ys, oxinet.optim.Adam(model.parameters(), lr=0.01), reg_epochs, l2=l2,
                             record_every=10)
        out["reg"][name] = {"train": accuracy(model, xs, ys), "test": accuracy(model, x_te, y_te)}
        say(f"regularisation {name:>7}: train {out['reg'][name]['train']:.3f}, test {out['reg'][name]['test']:.3f}")
    panels.append(("regularisation", curves))

    curves = {}
    base = initialise(mlp([2, 10, 5, 1]), "he", seed)
    for name in ("gd", "momentum", "adam"):
        model = copy.deepcopy(base)
        if name == "gd":
            opt = oxinet.optim.SGD(model.parameters(), lr=0.05)
        elif name == "momentum":
            opt = oxinet.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        else:
            opt = oxinet.optim.Adam(model.parameters(), lr=0.01)
        curves[name] = train(model, x_tr, y_tr, opt, opt_epochs, batch_size=64, seed=seed)
        out["optim"][name] = {"final_cost": curves[name][-1], "train": accuracy(model, x_tr, y_tr),
                              "test": accuracy(model, x_te, y_te)}
        say(f"mini-batch {name:>8}: cost {curves[name][0]:.3f} -> {curves[name][-1]:.3f}, "
            f"test {out['optim'][name]['test']:.3f}")
    panels.append(("optimisers (mini-batch 64)", curves))
    out["curves"] = panels
    out["png"] = plot_curves(os.path.join(out_dir, "init_reg_optim_curves.png"), panels, xlabel="epoch",
                             ylabel="cost (log scale)", logy=True)
    say(f"curves written to {out['png']}")
    return out


if __name__ == "__main__":
    main()
