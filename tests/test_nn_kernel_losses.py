"""F.cross_entropy and F.binary_cross_entropy_with_logits on the Rust kernels: values vs the
Tensor-op compositions (log_softmax + nll, softplus expression) for every option, float64
gradient checks, and the fallback that keeps the documented errors."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
from oxinet.nn import functional as F


def _T(a, requires_grad=False):
    a = np.asarray(a)
    return ox.tensor(a, dtype=a.dtype if a.dtype.kind == "f" else None, requires_grad=requires_grad)


CE_CASES = [
    ("plain", (6, 5), {}),
    ("none", (6, 5), dict(reduction="none")),
    ("sum_weight", (6, 5), dict(reduction="sum", weight=np.linspace(0.5, 2, 5))),
    ("ignore_smooth", (6, 5), dict(ignore_index=2, label_smoothing=0.2, weight=np.linspace(0.5, 2, 5))),
    ("spatial_none", (2, 4, 3, 2), dict(reduction="none", label_smoothing=0.1)),
    ("spatial_mean", (2, 4, 3), dict(ignore_index=1)),
    ("unbatched", (5,), {}),
    ("probs", (4, 3), dict(probs=True, label_smoothing=0.1)),
]


@pytest.mark.parametrize("name,shape,kw", CE_CASES, ids=[c[0] for c in CE_CASES])
def test_cross_entropy_kernel_matches_composite_and_gradchecks(name, shape, kw):
    rng = np.random.default_rng(0)
    kw = dict(kw)
    x = _T(rng.standard_normal(shape), requires_grad=True)
    C = shape[0] if len(shape) == 1 else shape[1]
    if kw.pop("probs", False):
        t = rng.random(shape)
        t /= t.sum(1, keepdims=True)
    else:
        tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
        t = rng.integers(0, C, tshape)
    out = F.cross_entropy(x, t, **kw)
    ref = F._cross_entropy_composite(x, t, **kw)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12, atol=1e-14)
    assert out.grad_fn is not None and "CrossEntropyFn" in out.grad_fn.name()
    assert ox.gradcheck(lambda v: F.cross_entropy(v, t, **kw), (x,))
    # float32 stays float32
    x32 = _T(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    y32 = F.cross_entropy(x32, t, **kw)
    assert y32.dtype == np.float32
    y32.sum().backward()
    assert x32.grad.dtype == np.float32


def test_cross_entropy_errors_unchanged():
    x = _T(np.zeros((3, 4)))
    with pytest.raises(IndexError):
        F.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="'weight'"):
        F.cross_entropy(x, np.array([0, 1, 1]), weight=np.ones(3))
    with pytest.raises(TypeError):
        F.cross_entropy(_T(np.zeros((3, 4), np.int64)), np.array([0, 1, 1]))


@pytest.mark.parametrize("kw", [{}, dict(reduction="none"), dict(reduction="sum", pos_weight=np.array([1., 2., 3.])),
                                dict(weight=np.array([0.5, 1.0, 2.0]))])
def test_bce_with_logits_kernel(kw):
    rng = np.random.default_rng(1)
    x = _T(rng.standard_normal((4, 3)) * 3, requires_grad=True)
    y = rng.random((4, 3))
    out = F.binary_cross_entropy_with_logits(x, y, **kw)
    assert "BCEWithLogitsFn" in out.grad_fn.name()
    xd = x.numpy()
    pw = kw.get("pos_weight", 1.0)
    w = kw.get("weight", 1.0)
    sp = np.logaddexp(0, -xd)
    ref = w * ((1 - y) * xd + (1 + (pw - 1) * y) * sp)
    red = kw.get("reduction", "mean")
    ref = ref.mean() if red == "mean" else ref.sum() if red == "sum" else ref
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)
    assert ox.gradcheck(lambda v: F.binary_cross_entropy_with_logits(v, y, **kw), (x,))
    # large inputs take the NumPy expression; same values
    big = _T(rng.standard_normal((80, 80)))
    yb = rng.random((80, 80))
    a = F.binary_cross_entropy_with_logits(big, yb)
    np.testing.assert_allclose(a.item(), np.mean((1 - yb) * big.numpy() + np.logaddexp(0, -big.numpy())), rtol=1e-12)
