"""Whole training steps of the model-zoo CNNs (batched small-plane convolutions, depthwise
phase-split paths, fused BatchNorm, fused SGD) give bitwise the same parameters with 1 and
2 threads."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.models import mobilenet_v2, resnet18


def _train(build, size, threads):
    ox.set_num_threads(threads)
    ox.manual_seed(0)
    model = build(num_classes=5, **({"width": 16} if build is resnet18 else {}))
    opt = ox.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = ox.tensor(rng.standard_normal((4, 3, size, size)).astype(np.float32))
    t = rng.integers(0, 5, 4)
    for _ in range(2):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
    return float(loss.item()), [p.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("build,size", [(mobilenet_v2, 32), (resnet18, 32)])
def test_training_steps_do_not_depend_on_thread_count(build, size):
    try:
        l1, p1 = _train(build, size, 1)
        l2, p2 = _train(build, size, 2)
    finally:
        ox.set_num_threads(2)
    assert np.isfinite(l1) and l1 == l2
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
