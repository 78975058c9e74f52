"""nn.init: gains, fans, distributions (course F15/F75) and PyTorch's conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.nn import init


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_fans_for_linear_and_conv_shapes():
    assert init._calculate_fan_in_and_fan_out(ox.zeros(20, 10)) == (10, 20)
    assert init._calculate_fan_in_and_fan_out(ox.zeros(8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(ox.zeros(5))


def _w(*shape):
    return nn.Parameter(ox.zeros(*shape, dtype=ox.float64))


def test_distribution_scales():
    ox.manual_seed(0)
    fan_in, fan_out = 400, 300
    w = init.xavier_uniform_(_w(fan_out, fan_in))
    a = math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w.numpy()).max() <= a
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    w = init.xavier_normal_(_w(fan_out, fan_in), gain=2.0)
    assert w.numpy().std() == pytest.approx(2 * math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    # course He: randn * sqrt(2 / n_in) for ReLU
    w = init.kaiming_normal_(_w(fan_out, fan_in), nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    assert abs(w.numpy().mean()) < 0.003
    w = init.kaiming_normal_(_w(fan_out, fan_in), mode="fan_out", nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    w = init.kaiming_uniform_(_w(fan_out, fan_in), nonlinearity="relu")
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / fan_in)
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    # course tanh "Xavier": sqrt(1 / n_in)
    w = init.lecun_normal_(_w(fan_out, fan_in))
    assert w.numpy().std() == pytest.approx(math.sqrt(1 / fan_in), rel=0.02)
    w = init.lecun_uniform_(_w(fan_out, fan_in))
    assert w.numpy().std() == pytest.approx(math.sqrt(1 / fan_in), rel=0.02)
    w = init.small_normal_(_w(fan_out, fan_in))
    assert w.numpy().std() == pytest.approx(0.01, rel=0.02)
    w = init.normal_(_w(200, 300), mean=1.0, std=0.5)
    assert w.numpy().mean() == pytest.approx(1.0, abs=0.01) and w.numpy().std() == pytest.approx(0.5, rel=0.02)
    w = init.uniform_(_w(200, 300), -2, 3)
    assert w.numpy().min() >= -2 and w.numpy().max() < 3
    w = init.trunc_normal_(_w(100, 100), std=1.0, a=-1.0, b=1.0)
    assert np.abs(w.numpy()).max() <= 1.0


def test_constant_fills_and_aliases():
    w = _w(3, 4)
    assert np.all(init.ones_(w).numpy() == 1)
    assert np.all(init.zeros_(w).numpy() == 0)
    assert np.all(init.constant_(w, 0.3).numpy() == 0.3)
    np.testing.assert_array_equal(init.eye_(w).numpy(), np.eye(3, 4))
    assert init.glorot_uniform_ is init.xavier_uniform_ and init.he_normal_ is init.kaiming_normal_
    assert init.kaiming_uniform is init.kaiming_uniform_


@pytest.mark.parametrize("shape", [(5, 8), (8, 5), (4, 2, 3)])
def test_orthogonal(shape):
    ox.manual_seed(0)
    w = init.orthogonal_(_w(*shape), gain=2.0).numpy().reshape(shape[0], -1)
    if w.shape[0] <= w.shape[1]:
        np.testing.assert_allclose(w @ w.T, 4 * np.eye(w.shape[0]), atol=1e-10)
    else:
        np.testing.assert_allclose(w.T @ w, 4 * np.eye(w.shape[1]), atol=1e-10)


def test_init_is_repeatable_and_keeps_dtype():
    ox.manual_seed(7)
    a = nn.Linear(5, 4)
    ox.manual_seed(7)
    b = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    assert a.weight.dtype == np.float32
    init.kaiming_normal_(a.weight)  # works on a Parameter that requires grad
    assert a.weight.dtype == np.float32 and a.weight.requires_grad
