"""Training throughput: the demo's LeNet-5 on 32x32 digits, one epoch per call."""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

_N, _BATCH = 1437, 32  # the demo's training split and batch size


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((_N, 1, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, _N)
    return x, y


@case(f"LeNet-5 train epoch {_N}x1x32x32 B{_BATCH} Adam", group="train", peers=("torch",),
      items=_N, unit="samples")
def lenet5_epoch(lib):
    x, y = _data()
    if lib == "oxinet":
        import oxinet
        from oxinet.demo import lenet5
        from oxinet.train import Model

        oxinet.manual_seed(0)
        model = Model(lenet5()).compile(optimizer="adam", loss="cross_entropy", lr=1e-3)
        return lambda: model.fit(x, y, batch_size=_BATCH, epochs=1, verbose=0, seed=0)
    if lib == "torch":
        import torch
        from torch import nn

        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        loss_fn = nn.CrossEntropyLoss()

        def epoch():
            perm = torch.randperm(_N)
            for i in range(0, _N, _BATCH):
                idx = perm[i:i + _BATCH]
                opt.zero_grad()
                loss_fn(net(tx[idx]), ty[idx]).backward()
                opt.step()

        return epoch
    return None
