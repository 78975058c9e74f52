"""Property test: for random broadcastable shape pairs, every binary op's gradients are
reduced back to each input's shape and match finite differences."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import oxinet as ox


@st.composite
def broadcastable_pair(draw):
    nd = draw(st.integers(0, 3))
    full = [draw(st.integers(1, 3)) for _ in range(nd)]
    a = [d if draw(st.booleans()) else 1 for d in full]
    b = [d if draw(st.booleans()) else 1 for d in full]
    a = a[draw(st.integers(0, len(a))):]  # drop some leading dims
    b = b[draw(st.integers(0, len(b))):]
    return tuple(a), tuple(b)


OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / (y * y + 1),
    "maximum": lambda x, y: ox.maximum(x, y),
    "where": lambda x, y: ox.where(x.numpy() > 0, x, y),
}


@settings(max_examples=25, deadline=None)
@given(broadcastable_pair(), st.sampled_from(sorted(OPS)), st.integers(0, 2**16))
def test_broadcast_gradients(shapes, op, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes
    a = ox.tensor(rng.standard_normal(sa), dtype=ox.float64, requires_grad=True)
    b = ox.tensor(rng.standard_normal(sb), dtype=ox.float64, requires_grad=True)
    if op == "maximum":  # keep away from ties
        b.numpy()[...] += 0.05
    out = OPS[op](a, b)
    assert out.shape == np.broadcast_shapes(sa, sb)
    assert ox.gradcheck(OPS[op], [a, b])
    assert a.grad is not None and a.grad.shape == sa
    assert b.grad.shape == sb
