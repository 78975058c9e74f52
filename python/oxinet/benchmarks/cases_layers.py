"""Layer cases: a training step (forward + backward) through the nn Modules that wrap the
kernels, against the bare ``oxinet.ops`` forward/backward calls they make (peer "ops"), so
the ratio is the cost of the Module + autograd wiring; and torch where installed."""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@case("Conv2d layer fwd+bwd N8 C32 28x28 k3 p1 O32", group="layers", flops=3 * 2 * 8 * 32 * 28 * 28 * 32 * 9,
      peers=("ops", "torch"))
def conv_layer(lib):
    x = _rand(8, 32, 28, 28)
    if lib == "oxinet":
        import oxinet as ox

        m = ox.nn.Conv2d(32, 32, 3, padding=1)
        t = ox.tensor(x, requires_grad=True)
        return lambda: m(t).sum().backward()
    if lib == "ops":
        import oxinet.ops as F

        w, b = _rand(32, 32, 3, 3, seed=1) * 0.05, _rand(32, seed=2)

        def step():
            y = F.conv2d(x, w, b, padding=1)
            F.conv2d_backward(np.ones_like(y), x, w, padding=1)

        return step
    if lib == "torch":
        import torch

        m = torch.nn.Conv2d(32, 32, 3, padding=1)
        t = torch.from_numpy(x).requires_grad_()
        return lambda: m(t).sum().backward()
    return None


@case("LSTM layer fwd+bwd T32 B16 D64 H128", group="layers", flops=3 * 2 * 32 * 16 * 4 * 128 * (64 + 128),
      peers=("ops", "torch"))
def lstm_layer(lib):
    x = _rand(32, 16, 64)
    if lib == "oxinet":
        import oxinet as ox

        m = ox.nn.LSTM(64, 128)
        t = ox.tensor(x, requires_grad=True)
        return lambda: m(t)[0].sum().backward()
    if lib == "ops":
        import oxinet.ops as F

        w = [_rand(512, 64, seed=1) * 0.05, _rand(512, 128, seed=2) * 0.05, _rand(512, seed=3), _rand(512, seed=4)]

        def step():
            y, h, c, cache = F.lstm_stack(x, None, None, w, return_cache=True)
            F.lstm_stack_backward(np.ones_like(y), np.zeros_like(h), np.zeros_like(c), cache)

        return step
    if lib == "torch":
        import torch

        m = torch.nn.LSTM(64, 128)
        t = torch.from_numpy(x).requires_grad_()
        return lambda: m(t)[0].sum().backward()
    return None


@case("MultiheadAttention fwd+bwd B8 L64 E128 h8", group="layers", flops=3 * (4 * 2 * 8 * 64 * 128 * 128
                                                                                 + 2 * 2 * 8 * 64 * 64 * 128),
      peers=("torch",))
def mha_layer(lib):
    x = _rand(8, 64, 128)
    if lib == "oxinet":
        import oxinet as ox

        m = ox.nn.MultiheadAttention(128, 8, batch_first=True)
        t = ox.tensor(x, requires_grad=True)
        return lambda: m(t, t, t, need_weights=False)[0].sum().backward()
    if lib == "torch":
        import torch

        m = torch.nn.MultiheadAttention(128, 8, batch_first=True)
        t = torch.from_numpy(x).requires_grad_()
        return lambda: m(t, t, t, need_weights=False)[0].sum().backward()
    return None


def _numpy_batch_norm_step(x, w, b, eps=1e-5):
    """Training-mode batch norm forward and backward (dx, dw, db) in plain NumPy, NCHW."""
    axes = (0, 2, 3)
    mean = x.mean(axes, keepdims=True)
    xc = x - mean
    invstd = 1 / np.sqrt((xc * xc).mean(axes, keepdims=True) + eps)
    xhat = xc * invstd
    y = xhat * w[:, None, None] + b[:, None, None]
    dy = np.ones_like(y)
    db = dy.sum(axes)
    dw = (dy * xhat).sum(axes)
    m = x.size / x.shape[1]
    dx = (w[:, None, None] * invstd / m) * (m * dy - db[:, None, None] - xhat * dw[:, None, None])
    return y, dx, dw, db


@case("batch_norm train fwd+bwd N64 C64 56x56", group="layers", bytes=4 * 64 * 64 * 56 * 56 * 5,
      peers=("numpy",))
def batch_norm_step(lib):
    x = _rand(64, 64, 56, 56)
    w, b = 1 + 0.1 * _rand(64, seed=1), 0.1 * _rand(64, seed=2)
    if lib == "oxinet":
        import oxinet.ops as F

        def step():
            y, mean, invstd = F.batch_norm(x, weight=w, bias=b, training=True, return_stats=True)
            return F.batch_norm_backward(np.ones_like(y), x, mean, invstd, w, b, training=True)

        return step
    if lib == "numpy":
        return lambda: _numpy_batch_norm_step(x, w, b)
    return None
