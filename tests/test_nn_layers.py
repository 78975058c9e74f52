"""Layers: NumPy references, gradient checks (train and eval mode) for every layer,
BatchNorm running statistics, dropout, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.nn import functional as F


def _x(*shape, seed=0, away=False):
    a = np.random.default_rng(seed).standard_normal(shape)
    if away:
        a = np.sign(a) * (np.abs(a) + 0.2)
    return ox.tensor(a, dtype=ox.float64, requires_grad=True)


def _perturb_params(layer, seed=1):
    """Move affine params away from 1/0 so their gradients are exercised."""
    rng = np.random.default_rng(seed)
    with ox.no_grad():
        for p in layer.parameters():
            p.numpy()[...] = rng.standard_normal(p.shape) * 0.5 + (1.0 if p.ndim == 1 else 0.0)


LAYERS = [
    ("Linear", lambda: nn.Linear(4, 3), (5, 4)),
    ("Linear_nobias", lambda: nn.Linear(4, 3, bias=False), (2, 3, 4)),
    ("Bilinear", None, None),
    ("Identity", lambda: nn.Identity(), (2, 3)),
    ("Flatten", lambda: nn.Flatten(), (2, 3, 4)),
    ("Unflatten", lambda: nn.Unflatten(1, (2, 3)), (2, 6)),
    ("ReLU", lambda: nn.ReLU(), (3, 4)),
    ("ReLU6", lambda: nn.ReLU6(), (3, 4)),
    ("Sigmoid", lambda: nn.Sigmoid(), (3, 4)),
    ("Tanh", lambda: nn.Tanh(), (3, 4)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (3, 4)),
    ("PReLU_shared", lambda: nn.PReLU(), (3, 4)),
    ("PReLU_channels", lambda: nn.PReLU(3), (2, 3, 4)),
    ("ELU", lambda: nn.ELU(0.5), (3, 4)),
    ("CELU", lambda: nn.CELU(1.2), (3, 4)),
    ("SELU", lambda: nn.SELU(), (3, 4)),
    ("GELU", lambda: nn.GELU(), (3, 4)),
    ("GELU_tanh", lambda: nn.GELU("tanh"), (3, 4)),
    ("SiLU", lambda: nn.SiLU(), (3, 4)),
    ("Mish", lambda: nn.Mish(), (3, 4)),
    ("Softplus", lambda: nn.Softplus(beta=2.0), (3, 4)),
    ("LogSigmoid", lambda: nn.LogSigmoid(), (3, 4)),
    ("Hardtanh", lambda: nn.Hardtanh(-0.5, 0.5), (3, 4)),
    ("Softsign", lambda: nn.Softsign(), (3, 4)),
    ("Softmax", lambda: nn.Softmax(dim=1), (3, 4)),
    ("LogSoftmax", lambda: nn.LogSoftmax(dim=-1), (3, 4)),
    ("Softmin", lambda: nn.Softmin(dim=0), (3, 4)),
    ("Maxout", lambda: nn.Maxout(3), (2, 6, 2)),
    ("Dropout", lambda: nn.Dropout(0.0), (3, 4)),
    ("Dropout2d", lambda: nn.Dropout2d(0.0), (2, 3, 2, 2)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(3), (5, 3)),
    ("BatchNorm1d_3d", lambda: nn.BatchNorm1d(3), (4, 3, 2)),
    ("BatchNorm1d_noaffine", lambda: nn.BatchNorm1d(3, affine=False), (5, 3)),
    ("BatchNorm1d_untracked", lambda: nn.BatchNorm1d(3, track_running_stats=False), (5, 3)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(2), (3, 2, 2, 3)),
    ("LayerNorm", lambda: nn.LayerNorm(4), (3, 4)),
    ("LayerNorm_2d_shape", lambda: nn.LayerNorm((3, 4)), (2, 3, 4)),
    ("GroupNorm", lambda: nn.GroupNorm(2, 4), (2, 4, 3)),
    ("GroupNorm_4d", lambda: nn.GroupNorm(1, 2), (2, 2, 2, 2)),
    ("InstanceNorm2d", lambda: nn.InstanceNorm2d(2), (2, 2, 3, 3)),
    ("InstanceNorm2d_affine_tracked", lambda: nn.InstanceNorm2d(2, affine=True, track_running_stats=True),
     (2, 2, 3, 3)),
]
LAYERS = [c for c in LAYERS if c[1] is not None]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_gradcheck(name, make, shape, mode):
    ox.manual_seed(0)
    layer = make().double()
    _perturb_params(layer)
    if mode == "eval":
        if hasattr(layer, "running_mean") and layer.running_mean is not None:
            # give the running statistics non-trivial values first
            layer.train()
            with ox.no_grad():
                layer(ox.randn(*shape, dtype=ox.float64) * 2 + 1)
        layer.eval()
    else:
        layer.train()
    x = _x(*shape, away=True)
    params = [p for p in layer.parameters()]
    assert ox.gradcheck(layer, [x], params=params)


def test_bilinear_gradcheck():
    layer = nn.Bilinear(2, 3, 4).double()
    assert ox.gradcheck(layer, [_x(5, 2), _x(5, 3, seed=1)], params=layer.parameters())


def test_linear_matches_numpy_and_torch_init_bounds():
    ox.manual_seed(0)
    lin = nn.Linear(50, 20)
    bound = 1 / math.sqrt(50)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert w.shape == (20, 50) and b.shape == (20,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.1)  # U(-a, a) has std a / sqrt(3)
    x = np.random.default_rng(0).standard_normal((7, 50)).astype(np.float32)
    np.testing.assert_allclose(lin(ox.tensor(x)).numpy(), x @ w.T + b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="'input' has shape"):
        lin(ox.randn(3, 49))


def _bn_ref(x, axes, eps):
    m = x.mean(axes, keepdims=True)
    v = x.var(axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps)


def test_batchnorm_running_stats_match_numpy_ewma():
    ox.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.2).double()
    rm, rv = np.zeros(3), np.ones(3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal((4, 3, 2, 5)) * 3 + 1
        y = bn(ox.tensor(x, dtype=ox.float64))
        np.testing.assert_allclose(y.numpy(), _bn_ref(x, (0, 2, 3), 1e-5), rtol=1e-10, atol=1e-10)
        n = 4 * 2 * 5
        rm = 0.8 * rm + 0.2 * x.mean((0, 2, 3))
        rv = 0.8 * rv + 0.2 * x.var((0, 2, 3)) * n / (n - 1)  # unbiased in the running estimate
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 4
    bn.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    ref = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(bn(ox.tensor(x, dtype=ox.float64)).numpy(), ref, rtol=1e-10)
    assert bn.num_batches_tracked.item() == 4  # eval does not count


def test_batchnorm_cumulative_average_when_momentum_none():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    xs = [np.random.default_rng(i).standard_normal((6, 2)) for i in range(3)]
    for x in xs:
        bn(ox.tensor(x, dtype=ox.float64))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0), rtol=1e-12)


def test_batchnorm_errors():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(ox.randn(1, 3))
    with pytest.raises(ValueError, match="has 4 channels"):
        bn(ox.randn(5, 4))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        bn(ox.randn(5, 3, 2, 2))
    with pytest.raises(ValueError, match="'weight' has shape"):
        F.batch_norm(ox.randn(4, 3), None, None, weight=ox.ones(2), training=True)


def test_layer_group_instance_norm_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3, 3))
    t = ox.tensor(x, dtype=ox.float64)
    np.testing.assert_allclose(F.layer_norm(t, (3, 3)).numpy(), _bn_ref(x, (2, 3), 1e-5), rtol=1e-10)
    g = x.reshape(2, 2, -1)
    np.testing.assert_allclose(F.group_norm(t, 2).numpy(), _bn_ref(g, (2,), 1e-5).reshape(x.shape), rtol=1e-10)
    np.testing.assert_allclose(nn.InstanceNorm2d(4).double()(t).numpy(), _bn_ref(x, (2, 3), 1e-5), rtol=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        F.group_norm(t, 3)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(t, (4,))


def test_dropout_is_inverted_and_off_in_eval():
    ox.manual_seed(0)
    d = nn.Dropout(0.25)
    x = ox.ones(200, 100)
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    d.eval()
    assert d(x) is x
    assert np.all(nn.Dropout(1.0)(x).numpy() == 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_dropout_gradient_uses_the_same_mask():
    ox.manual_seed(0)
    x = ox.ones(50, requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())


def test_dropout_is_repeatable_with_manual_seed():
    ox.manual_seed(5)
    a = F.dropout(ox.ones(20), 0.5).numpy()
    ox.manual_seed(5)
    b = F.dropout(ox.ones(20), 0.5).numpy()
    np.testing.assert_array_equal(a, b)


def test_dropout2d_zeroes_whole_channels():
    ox.manual_seed(0)
    y = nn.Dropout2d(0.5)(ox.ones(8, 16, 3, 3)).numpy()
    per_channel = y.reshape(8, 16, -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0.2 < (per_channel[..., 0] == 0).mean() < 0.8
    with pytest.raises(ValueError, match="3-D"):
        nn.Dropout2d()(ox.ones(3, 4))


def test_activation_values():
    x = np.linspace(-3, 3, 13)
    t = ox.tensor(x, dtype=ox.float64)
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(t).numpy(), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(nn.ELU()(t).numpy(), np.where(x > 0, x, np.exp(x) - 1))
    np.testing.assert_allclose(nn.SELU()(t).numpy(),
                               1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)))
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(nn.GELU()(t).numpy(), 0.5 * x * (1 + erf(x / math.sqrt(2))))
    np.testing.assert_allclose(nn.SiLU()(t).numpy(), x / (1 + np.exp(-x)))
    np.testing.assert_allclose(nn.Softplus()(t).numpy(), np.log1p(np.exp(x)))
    np.testing.assert_allclose(nn.PReLU()(t).numpy(), np.where(x > 0, x, 0.25 * x), rtol=1e-6)
    m = ox.tensor(np.arange(12.0).reshape(2, 6))
    np.testing.assert_array_equal(nn.Maxout(2)(m).numpy(), np.arange(12.0).reshape(2, 3, 2).max(-1))
    with pytest.raises(ValueError, match="multiple of pool_size"):
        nn.Maxout(4)(m)


def test_softmax_default_dim_like_torch():
    x = ox.randn(2, 3)
    np.testing.assert_allclose(nn.Softmax()(x).numpy().sum(1), 1, rtol=1e-6)
    x3 = ox.randn(2, 3, 4)
    np.testing.assert_allclose(F.softmax(x3).numpy().sum(0), 1, rtol=1e-6)


def test_float32_layers_keep_float32():
    x = ox.randn(4, 3)
    for layer in (nn.Linear(3, 2), nn.BatchNorm1d(3), nn.LayerNorm(3), nn.GELU(), nn.Dropout(0.5), nn.PReLU()):
        assert layer(x).dtype == np.float32, type(layer).__name__


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
def test_pad_modes_match_numpy_and_gradcheck(mode, np_mode):
    a = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    got = F.pad(ox.tensor(a, dtype=ox.float64), (2, 1, 3, 0), mode=mode).numpy()
    np.testing.assert_array_equal(got, np.pad(a, ((0, 0), (0, 0), (3, 0), (2, 1)), mode=np_mode))
    x = _x(1, 2, 4, 3)
    assert ox.gradcheck(lambda t: F.pad(t, (2, 2, 1, 3), mode=mode), [x])


def test_padding_modules():
    x = ox.tensor(np.arange(12.0).reshape(1, 1, 3, 4))
    assert nn.ZeroPad2d(1)(x).shape == (1, 1, 5, 6)
    assert nn.ZeroPad2d((1, 0, 2, 0))(x).numpy()[0, 0, 0, 0] == 0
    assert nn.ConstantPad2d(1, 7.0)(x).numpy()[0, 0, 0, 0] == 7
    np.testing.assert_array_equal(nn.ReflectionPad2d(1)(x).numpy()[0, 0, 0], [5, 4, 5, 6, 7, 6])
    np.testing.assert_array_equal(nn.ReplicationPad2d(1)(x).numpy()[0, 0, 0], [0, 0, 1, 2, 3, 3])
    assert nn.ReflectionPad1d(2)(ox.zeros(1, 2, 5)).shape == (1, 2, 9)
    with pytest.raises(ValueError, match="'padding'"):
        nn.ZeroPad2d((1, 2, 3))


def test_alpha_dropout_keeps_selu_statistics_and_dropout1d_channels():
    ox.manual_seed(0)
    x = ox.randn(200000, dtype=ox.float64)
    y = nn.AlphaDropout(0.2).train()(x).numpy()
    assert abs(y.mean()) < 0.01 and abs(y.std() - 1) < 0.01
    assert nn.AlphaDropout(0.2).eval()(x) is x
    z = nn.Dropout1d(0.5)(ox.ones(4, 8, 5)).numpy()
    assert np.all((z == 0).all(-1) | (z == 2).all(-1))
