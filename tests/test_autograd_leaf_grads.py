"""Leaf gradients are private arrays (large ones in recycled memory): a gradient that
reaches several leaves, or the caller's own array, is copied, never shared."""

from __future__ import annotations

import numpy as np

import oxinet as ox


def test_one_upstream_gradient_reaching_two_leaves_gives_independent_grads():
    shape = (512, 600)  # > 1 MiB: the recycled-buffer path
    a = ox.tensor(np.ones(shape, np.float32), requires_grad=True)
    b = ox.tensor(np.ones(shape, np.float32), requires_grad=True)
    (a + b).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    (a * 3.0).sum().backward()  # accumulates into a.grad only
    np.testing.assert_array_equal(a.grad.numpy(), np.full(shape, 4.0, np.float32))
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(shape, np.float32))


def test_leaf_grad_does_not_alias_the_callers_gradient_and_keeps_the_leaf_dtype():
    for shape in [(3, 4), (700, 700)]:
        x = ox.tensor(np.zeros(shape), dtype=np.float64, requires_grad=True)
        g = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        y = x * 1.0
        y.backward(ox.tensor(g))
        assert x.grad.dtype == np.float64
        np.testing.assert_array_equal(x.grad.numpy(), g.astype(np.float64))
        g[...] = 7.0
        assert not np.any(x.grad.numpy() == 7.0)


def test_grads_after_zero_grad_are_fresh_and_correct():
    w = ox.nn.Parameter(np.ones((600, 600), np.float32))
    opt = ox.optim.SGD([w], lr=0.0)
    for k in range(1, 4):
        opt.zero_grad()
        (w * float(k)).sum().backward()
        np.testing.assert_array_equal(w.grad.numpy(), np.full((600, 600), k, np.float32))
