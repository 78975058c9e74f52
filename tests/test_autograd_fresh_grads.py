"""Leaf gradients adopted without a copy (Node.fresh_grads / Function.fresh_grads): when a
node promises that its backward returns newly allocated arrays, a leaf's first gradient of
a pass becomes its .grad as is; otherwise, or when one array goes to two inputs, .grad is a
private copy. Either way the values and later accumulation are the same."""

import numpy as np
import pytest

import oxinet
from oxinet.autograd.function import Function


def _scale_fn(fresh, same_array_twice=False):
    returned = []

    class Scale(Function):
        fresh_grads = fresh

        @staticmethod
        def forward(ctx, a, b):
            return a * 2.0 + b * 3.0

        @staticmethod
        def backward(ctx, g):
            ga = g * 2.0
            gb = ga if same_array_twice else g * 3.0
            returned.extend([ga, gb])
            return ga, gb

    return Scale, returned


@pytest.mark.parametrize("fresh", [False, True])
def test_values_and_accumulation_do_not_depend_on_adoption(fresh):
    Scale, _ = _scale_fn(fresh)
    a = oxinet.tensor(np.arange(4.0), requires_grad=True)
    b = oxinet.tensor(np.ones(4), requires_grad=True)
    for step in (1, 2):
        Scale.apply(a, b).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 2.0 * step))
        np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 3.0 * step))


def test_fresh_gradients_are_adopted_and_others_copied():
    for fresh in (False, True):
        Scale, returned = _scale_fn(fresh)
        a = oxinet.tensor(np.arange(4.0), requires_grad=True)
        b = oxinet.tensor(np.ones(4), requires_grad=True)
        Scale.apply(a, b).sum().backward()
        assert (a.grad._data is returned[0]) == fresh
        assert (b.grad._data is returned[1]) == fresh


def test_one_array_for_two_inputs_is_copied_for_both():
    Scale, returned = _scale_fn(True, same_array_twice=True)
    a = oxinet.tensor(np.arange(4.0), requires_grad=True)
    b = oxinet.tensor(np.ones(4), requires_grad=True)
    Scale.apply(a, b).sum().backward()
    assert a.grad._data is not returned[0] and b.grad._data is not returned[0]
    a.grad._data += 100.0  # the two .grad arrays are independent
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 2.0))


def test_a_hook_result_is_never_adopted():
    Scale, returned = _scale_fn(True)
    a = oxinet.tensor(np.arange(4.0), requires_grad=True)
    b = oxinet.tensor(np.ones(4), requires_grad=True)
    kept = np.full(4, 7.0)
    a.register_hook(lambda g: oxinet.tensor(kept))
    Scale.apply(a, b).sum().backward()
    assert a.grad._data is not kept
    a.grad._data += 1.0
    np.testing.assert_array_equal(kept, np.full(4, 7.0))


def test_layers_marked_fresh_give_the_same_gradients_as_a_copying_engine(monkeypatch):
    """Conv2d, BatchNorm2d and Linear (the nodes marked fresh) against the same model with
    adoption switched off."""
    from oxinet import nn
    from oxinet.autograd import graph

    def run():
        oxinet.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                              nn.Linear(8 * 6 * 6, 5))
        x = oxinet.tensor(np.random.default_rng(1).standard_normal((4, 3, 6, 6)).astype(np.float32))
        for _ in range(2):  # the second pass accumulates into the first's .grad
            model(x).square().sum().backward()
        return [p.grad.numpy().copy() for p in model.parameters()]

    adopted = run()
    original = graph.accumulate_leaf
    monkeypatch.setattr(graph, "accumulate_leaf", lambda t, g, fresh=False: original(t, g, False))
    copied = run()
    for a, c in zip(adopted, copied):
        np.testing.assert_array_equal(a, c)
