"""Activations: NumPy/math references (course F5), float64 finite-difference backward
checks for every activation and parameter, extreme inputs, NaN, errors."""

import math

import numpy as np
import pytest

import oxinet.ops as F
from helpers import check_grad, random_projection

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
erfc = np.vectorize(math.erfc)


def ref(name, x, **kw):
    x = np.asarray(x, np.float64)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0)
    if name == "leaky_relu":
        return np.where(x > 0, x, kw.get("negative_slope", 0.01) * x)
    if name == "elu":
        return np.where(x > 0, x, kw.get("alpha", 1.0) * np.expm1(x))
    if name == "selu":
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))
    if name == "gelu":
        # Stable rewrites of 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)) and 0.5 x (1 + erf(x/sqrt2)).
        if kw.get("approximate", "none") == "tanh":
            with np.errstate(over="ignore"):  # exp -> inf gives the correct -0
                return x / (1 + np.exp(-2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
        return 0.5 * x * erfc(-x / np.sqrt(2))
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name == "softplus":
        b, t = kw.get("beta", 1.0), kw.get("threshold", 20.0)
        return np.where(b * x > t, x, np.log1p(np.exp(b * x)) / b)
    raise KeyError(name)


CASES = [
    ("sigmoid", {}), ("tanh", {}), ("relu", {}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {}), ("elu", {"alpha": 0.5}), ("selu", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"}),
    ("silu", {}), ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 5.0}),
]


@pytest.mark.parametrize("name,kw", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float32, 3e-7), (np.float64, 3e-15)])
def test_forward_matches_reference(name, kw, dtype, tol):
    x = np.concatenate([np.linspace(-12, 12, 2001), [-1e-6, 1e-9, 0.0, -30.0, 30.0]]).astype(dtype)
    x = np.concatenate([x, np.random.default_rng(0).standard_normal(40000).astype(dtype)])  # several chunks
    y = getattr(F, name)(x, **kw)
    assert y.dtype == dtype and y.shape == x.shape
    r = ref(name, x, **kw)
    if name == "gelu" and dtype == np.float64:
        tol = 1e-13  # the far tail (x ~ -12, values ~1e-32): exp(-x^2/2) amplifies rounding of x
    np.testing.assert_allclose(y, r, rtol=8 * tol, atol=tol * 1e-3 if dtype == np.float32 else 1e-300)


@pytest.mark.parametrize("name,kw", CASES)
def test_backward_finite_differences(name, kw):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of relu-like functions
    if name == "softplus":
        x[0, :3] = [4.0, 6.0, 12.0]  # around the threshold (beta 2: 2x > 5)
        x[x * kw.get("beta", 1.0) == kw.get("threshold", 20.0)] += 0.1
    P = random_projection(x.shape, seed=2)
    fwd = getattr(F, name)
    bwd = getattr(F, name + "_backward")

    def loss():
        return np.sum(P * fwd(x, **kw))

    check_grad(loss, x, bwd(P, x, **kw))


def test_course_f5_derivative_identities():
    x = np.linspace(-6, 6, 101)
    one = np.ones_like(x)
    s = F.sigmoid(x)
    np.testing.assert_allclose(F.sigmoid_backward(one, x), s * (1 - s), rtol=1e-14)
    a = F.tanh(x)
    np.testing.assert_allclose(F.tanh_backward(one, x), 1 - a * a, rtol=1e-13, atol=1e-15)
    assert F.tanh_backward(np.ones(1), np.zeros(1))[0] == 1.0  # tanh'(0) = 1
    assert F.tanh_backward(np.ones(1), np.array([10.0]))[0] < 1e-8  # saturates
    np.testing.assert_array_equal(F.relu_backward(one, x), (x > 0).astype(float))


def test_extremes_and_nan():
    x = np.array([-1e4, -100.0, 100.0, 1e4, np.nan, np.inf, -np.inf], np.float32)
    with np.errstate(all="ignore"):
        for name in ("sigmoid", "tanh", "silu", "softplus", "gelu", "elu", "selu", "relu"):
            y = getattr(F, name)(x)
            r = ref(name, x.astype(np.float64))
            # float32 results below the smallest normal number are flushed to 0
            np.testing.assert_allclose(y[:4], r[:4], rtol=1e-6, atol=1.2e-38, err_msg=name)
            assert np.isnan(y[4]), name
    assert F.sigmoid(x)[0] == 0 and F.sigmoid(x)[3] == 1


def test_empty_noncontiguous_and_mixed():
    assert F.sigmoid(np.zeros((0, 3), np.float32)).shape == (0, 3)
    x = np.random.default_rng(3).standard_normal((6, 8))[:, ::2]
    np.testing.assert_allclose(F.silu(x), ref("silu", x), rtol=1e-14)
    g = F.gelu_backward(np.ones((6, 4), np.float32), x)
    assert g.dtype == np.float64


def test_bad_inputs_name_the_argument():
    with pytest.raises(TypeError, match="'input'"):
        F.relu(np.arange(4))
    with pytest.raises(ValueError, match="'grad_output'"):
        F.sigmoid_backward(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="'approximate'"):
        F.gelu(np.ones(3), approximate="fast")
    with pytest.raises(ValueError, match="'beta'"):
        F.softplus(np.ones(3), beta=0)
