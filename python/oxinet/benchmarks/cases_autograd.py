"""Autograd cases: the per-op cost of graph bookkeeping on tiny tensors (the issue asks for
oxinet within 2x of PyTorch's per-op overhead) and one small MLP training step.

The "numpy" peer runs the same arithmetic as plain NumPy without any graph (forward only for
the tiny-op cases, a hand-written forward+backward for the MLP), i.e. the floor that the
bookkeeping adds to.
"""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@case("autograd 8x8 add+mul+sum fwd+bwd (3 ops)", group="autograd", peers=("torch", "numpy"))
def tiny_fwd_bwd(lib):
    a, b = _rand(8, 8), _rand(8, 8, seed=1)
    if lib == "oxinet":
        import oxinet as ox

        ta, tb = ox.tensor(a, requires_grad=True), ox.tensor(b, requires_grad=True)

        def step():
            ((ta + tb) * ta).sum().backward()
            ta.grad = None
            tb.grad = None

        return step
    if lib == "torch":
        import torch

        ta = torch.from_numpy(a).requires_grad_()
        tb = torch.from_numpy(b).requires_grad_()

        def step():
            ((ta + tb) * ta).sum().backward()
            ta.grad = None
            tb.grad = None

        return step
    if lib == "numpy":  # forward only, no graph: the arithmetic floor
        return lambda: ((a + b) * a).sum()
    return None


@case("autograd 8x8 chain of 10 elementwise ops fwd only (recording)", group="autograd", peers=("torch", "numpy"))
def tiny_fwd_chain(lib):
    a = _rand(8, 8)
    if lib == "oxinet":
        import oxinet as ox

        x = ox.tensor(a, requires_grad=True)
    elif lib == "torch":
        import torch

        x = torch.from_numpy(a).requires_grad_()
    elif lib == "numpy":
        x = a
    else:
        return None

    def chain():
        y = x * 2.0
        y = y + x
        y = y - 1.0
        y = y * y
        y = y / 3.0
        y = y + x
        y = y * x
        y = y - x
        y = y * 0.5
        return y + 1.0

    return chain


@case("autograd MLP step B64 32-64-10 fwd+bwd+SGD", group="autograd",
      flops=3 * 2 * 64 * (32 * 64 + 64 * 10), peers=("torch", "numpy"))
def mlp_step(lib):
    x = _rand(64, 32)
    y = np.random.default_rng(2).integers(0, 10, 64)
    w1, b1 = _rand(64, 32, seed=3) * 0.1, np.zeros(64, np.float32)
    w2, b2 = _rand(10, 64, seed=4) * 0.1, np.zeros(10, np.float32)
    lr = 0.01
    if lib == "oxinet":
        import oxinet as ox
        from oxinet import nn, optim

        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
        model.load_state_dict({"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2})
        opt = optim.SGD(model.parameters(), lr=lr)
        xt = ox.tensor(x)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss_fn(model(xt), y).backward()
            opt.step()

        return step
    if lib == "torch":
        import torch

        model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss_fn(model(xt), yt).backward()
            opt.step()

        return step
    if lib == "numpy":  # the course's hand-written forward/backward (F7) for the same net
        W1, B1, W2, B2 = w1.copy(), b1.copy(), w2.copy(), b2.copy()
        onehot = np.eye(10, dtype=np.float32)[y]

        def step():
            h = x @ W1.T + B1
            a = np.maximum(h, 0)
            z = a @ W2.T + B2
            e = np.exp(z - z.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
            dz = (p - onehot) / len(x)
            dW2 = dz.T @ a
            dB2 = dz.sum(0)
            da = dz @ W2
            dh = da * (h > 0)
            dW1 = dh.T @ x
            dB1 = dh.sum(0)
            for p_, g in ((W1, dW1), (B1, dB1), (W2, dW2), (B2, dB2)):
                p_ -= lr * g

        return step
    return None
