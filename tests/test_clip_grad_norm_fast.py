"""clip_grad_norm_'s 2-norm (a float64 product-sum per gradient) against NumPy's
float64 norm over mixed shapes, dtypes, views, empty and non-finite gradients."""
import math

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.nn.utils import clip_grad_norm_
from oxinet.nn.utils.clip_grad import get_total_norm


def _params(arrays):
    ps = []
    for a in arrays:
        p = nn.Parameter(ox.tensor(np.zeros(a.shape), dtype=a.dtype))
        p.grad = ox.tensor(a, dtype=a.dtype)
        ps.append(p)
    return ps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_norm_matches_numpy_and_clips(dtype):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(dtype) for s in [(512, 288), (128,), (), (0, 4), (3, 5, 7)]]
    grads.append(rng.standard_normal((40, 30)).astype(dtype).T)  # a transposed view
    want = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert get_total_norm(grads) == pytest.approx(want, rel=1e-12)
    ps = _params(grads)
    total = clip_grad_norm_(ps, max_norm=1.0)
    assert total.item() == pytest.approx(want, rel=1e-6)
    coef = 1.0 / (want + 1e-6)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-5, atol=1e-7)
    assert get_total_norm([p.grad.numpy() for p in ps]) == pytest.approx(1.0, rel=1e-5)


def test_two_norm_non_finite():
    assert math.isnan(get_total_norm([np.array([1.0, np.nan], np.float32)]))
    assert get_total_norm([np.array([np.inf, 0.0], np.float32), np.ones(3, np.float32)]) == math.inf
    assert get_total_norm([np.zeros((0,), np.float32)]) == 0.0
    # other orders keep the general formula
    g = [np.array([3.0, -4.0])]
    assert get_total_norm(g, 1.0) == pytest.approx(7.0)
    assert get_total_norm(g, 3.0) == pytest.approx((27 + 64) ** (1 / 3))
