"""Convolution / pooling / resizing layers: parameter names, shapes and initialisation as
PyTorch documents them, outputs vs the NumPy references of tests/conv_refs.py and
tests/pool_refs.py, float64 gradient checks through every Module (train and eval mode),
and a small CNN trained on the bundled digits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.nn import functional as F

from conv_refs import conv_ref, conv_transpose_ref, unfold_ref
import pool_refs


def _T(a, requires_grad=False):
    """A Tensor keeping the array's float dtype (ox.tensor would cast to the default float32)."""
    a = np.asarray(a)
    return ox.tensor(a, dtype=a.dtype if a.dtype.kind == "f" else None, requires_grad=requires_grad)


def _x(*shape, seed=0):
    return _T(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def _check_module(layer, x, *extra):
    layer.double()
    for mode in ("train", "eval"):
        layer.train(mode == "train")
        assert ox.gradcheck(lambda inp: layer(inp, *extra), (x,), params=list(layer.named_parameters()))


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("cls,args,wshape", [
    (nn.Conv1d, (4, 6, 3), (6, 4, 3)),
    (nn.Conv2d, (4, 6, 3), (6, 4, 3, 3)),
    (nn.Conv2d, (4, 6, (3, 5)), (6, 4, 3, 5)),
    (nn.Conv3d, (2, 4, 3), (4, 2, 3, 3, 3)),
    (nn.ConvTranspose1d, (4, 6, 3), (4, 6, 3)),
    (nn.ConvTranspose2d, (4, 6, 3), (4, 6, 3, 3)),
    (nn.ConvTranspose3d, (4, 6, 2), (4, 6, 2, 2, 2)),
])
def test_conv_parameter_names_shapes_init(cls, args, wshape):
    ox.manual_seed(0)
    m = cls(*args)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["weight", "bias"]
    assert m.weight.shape == wshape and m.bias.shape == (args[1],)
    assert m.weight.dtype == np.float32
    # PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both, fan_in = weight.shape[1] * prod(k)
    fan_in = wshape[1] * int(np.prod(wshape[2:]))
    bound = 1 / math.sqrt(fan_in)
    for p in (m.weight, m.bias):
        a = p.numpy()
        assert np.abs(a).max() <= bound + 1e-7
    assert np.abs(m.weight.numpy()).max() > 0.7 * bound  # not all tiny


def test_conv_groups_depthwise_shapes_and_no_bias():
    m = nn.Conv2d(6, 12, 3, groups=6, bias=False)
    assert m.weight.shape == (12, 1, 3, 3) and m.bias is None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    t = nn.ConvTranspose2d(6, 4, 3, groups=2)
    assert t.weight.shape == (6, 2, 3, 3)
    with pytest.raises(ValueError, match="in_channels"):
        nn.Conv2d(5, 6, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels"):
        nn.Conv2d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(4, 5, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="same"):
        nn.Conv2d(4, 4, 3, stride=2, padding="same")


# ----------------------------------------------------------------------------- forward vs references


@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(padding="same", dilation=2),
    dict(padding="valid"),
    dict(groups=2, padding=(1, 0)),
    dict(groups=4, bias=False),  # depthwise
])
def test_conv2d_module_matches_reference(kw):
    ox.manual_seed(1)
    m = nn.Conv2d(4, 8, 3, **kw).double()
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 6))
    y = m(_T(x)).numpy()
    ref = conv_ref(x, m.weight.numpy(), None if m.bias is None else m.bias.numpy(),
                   kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), kw.get("groups", 1))
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes(mode):
    m = nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode).double()
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode=np_mode)
    ref = conv_ref(xp, m.weight.numpy(), m.bias.numpy())
    np.testing.assert_allclose(m(_T(x)).numpy(), ref, rtol=1e-10, atol=1e-12)
    _check_module(m, _x(1, 2, 4, 4))


def test_conv1d_conv3d_and_transposed_match_references():
    rng = np.random.default_rng(2)
    c1 = nn.Conv1d(3, 4, 3, stride=2, padding=1).double()
    x1 = rng.standard_normal((2, 3, 9))
    ref1 = conv_ref(x1, c1.weight.numpy(), c1.bias.numpy(), 2, 1)
    np.testing.assert_allclose(c1(_T(x1)).numpy(), ref1, atol=1e-10)
    c3 = nn.Conv3d(2, 3, 2, padding=1).double()
    x3 = rng.standard_normal((1, 2, 3, 4, 3))
    np.testing.assert_allclose(c3(_T(x3)).numpy(), conv_ref(x3, c3.weight.numpy(), c3.bias.numpy(), 1, 1),
                               atol=1e-10)
    t = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2).double()
    x = rng.standard_normal((2, 4, 3, 3))
    y = t(_T(x))
    assert y.shape == (2, 6, 6, 6)
    np.testing.assert_allclose(y.numpy(), conv_transpose_ref(x, t.weight.numpy(), t.bias.numpy(), 2, 1, 1, 2),
                               atol=1e-10)
    # output_size picks the output_padding
    t2 = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1).double()
    assert t2(_T(x), output_size=(6, 6)).shape == (2, 2, 6, 6)
    assert t2(_T(x)).shape == (2, 2, 5, 5)
    t1 = nn.ConvTranspose1d(3, 2, 4, stride=2).double()
    x1t = rng.standard_normal((2, 3, 5))
    np.testing.assert_allclose(t1(_T(x1t)).numpy(),
                               conv_transpose_ref(x1t, t1.weight.numpy(), t1.bias.numpy(), 2), atol=1e-10)


def test_conv_unbatched_and_numpy_input():
    m = nn.Conv2d(3, 2, 3).double()
    x = np.random.default_rng(0).standard_normal((3, 5, 5))
    y = m(x)
    assert y.shape == (2, 3, 3)
    np.testing.assert_allclose(y.numpy(), m(_T(x[None])).numpy()[0])


def test_conv_bad_input_names_argument():
    m = nn.Conv2d(3, 2, 3)
    with pytest.raises(ValueError, match="'weight'"):
        m(ox.zeros((1, 4, 5, 5)))


# ----------------------------------------------------------------------------- gradients through modules


CONV_MODULES = [
    ("conv1d", lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 2, 7)),
    ("conv2d", lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 4)),
    ("conv2d_dil_same", lambda: nn.Conv2d(2, 2, 2, padding="same", dilation=2), (1, 2, 5, 5)),
    ("conv2d_groups", lambda: nn.Conv2d(4, 4, 3, groups=2, stride=(2, 1)), (1, 4, 6, 5)),
    ("conv2d_depthwise_nobias", lambda: nn.Conv2d(3, 6, 3, groups=3, bias=False), (1, 3, 5, 5)),
    ("conv3d", lambda: nn.Conv3d(2, 2, 2), (1, 2, 3, 3, 3)),
    ("convT1d", lambda: nn.ConvTranspose1d(2, 3, 3, stride=2), (2, 2, 4)),
    ("convT2d", lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2), (1, 4, 3, 3)),
    ("convT3d", lambda: nn.ConvTranspose3d(2, 2, 2, stride=2), (1, 2, 2, 2, 2)),
]


@pytest.mark.parametrize("name,make,shape", CONV_MODULES, ids=[c[0] for c in CONV_MODULES])
def test_conv_module_gradcheck(name, make, shape):
    ox.manual_seed(3)
    _check_module(make(), _x(*shape))


POOL_MODULES = [
    ("maxpool1d", lambda: nn.MaxPool1d(3, 2, padding=1), (2, 3, 7)),
    ("maxpool2d", lambda: nn.MaxPool2d(2), (2, 2, 4, 6)),
    ("maxpool2d_ceil_dil", lambda: nn.MaxPool2d(3, 2, padding=1, dilation=1, ceil_mode=True), (1, 2, 6, 5)),
    ("avgpool1d", lambda: nn.AvgPool1d(3, 2, padding=1, count_include_pad=False), (2, 2, 7)),
    ("avgpool2d", lambda: nn.AvgPool2d(3, 2, padding=1), (1, 2, 6, 5)),
    ("avgpool2d_div", lambda: nn.AvgPool2d(2, divisor_override=3, ceil_mode=True), (1, 2, 5, 5)),
    ("adaptiveavg1d", lambda: nn.AdaptiveAvgPool1d(3), (2, 2, 7)),
    ("adaptiveavg2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 7)),
    ("adaptivemax1d", lambda: nn.AdaptiveMaxPool1d(3), (2, 2, 7)),
    ("adaptivemax2d", lambda: nn.AdaptiveMaxPool2d((2, None)), (1, 2, 5, 4)),
    ("globalavg", lambda: nn.GlobalAvgPool2d(), (2, 3, 4, 4)),
    ("globalmax", lambda: nn.GlobalMaxPool2d(keepdim=True), (2, 3, 4, 4)),
    ("upsample_nearest", lambda: nn.Upsample(scale_factor=2), (1, 2, 3, 3)),
    ("upsample_bilinear", lambda: nn.Upsample(size=(5, 7), mode="bilinear"), (1, 2, 3, 4)),
    ("upsample_bilinear_ac", lambda: nn.UpsamplingBilinear2d(scale_factor=2), (1, 1, 3, 3)),
    ("upsample_linear", lambda: nn.Upsample(scale_factor=1.5, mode="linear", align_corners=True), (1, 2, 4)),
    ("unfold", lambda: nn.Unfold(2, padding=1, stride=2), (1, 2, 4, 5)),
    ("fold", lambda: nn.Fold((4, 5), 2, padding=1, stride=2), (1, 8, 9)),
]


@pytest.mark.parametrize("name,make,shape", POOL_MODULES, ids=[c[0] for c in POOL_MODULES])
def test_pool_module_gradcheck(name, make, shape):
    _check_module(make(), _x(*shape, seed=4))


def test_pool_outputs_match_references():
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 6))
    t = _T(x)
    ref_y, ref_i = pool_refs.max_pool2d(x, 3, 2, 1, ceil=True)
    y, i = nn.MaxPool2d(3, 2, 1, ceil_mode=True, return_indices=True)(t)
    np.testing.assert_array_equal(y.numpy(), ref_y)
    np.testing.assert_array_equal(i.numpy(), ref_i)
    np.testing.assert_allclose(nn.AvgPool2d(2, 1, 1, count_include_pad=False)(t).numpy(),
                               pool_refs.avg_pool2d(x, 2, 1, 1, include_pad=False), rtol=1e-12)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((3, 4))(t).numpy(), pool_refs.adaptive_pool2d(x, 3, 4, "avg")[0],
                               rtol=1e-12)
    np.testing.assert_allclose(nn.GlobalAvgPool2d()(t).numpy(), x.mean((2, 3)), rtol=1e-12)
    np.testing.assert_allclose(nn.GlobalMaxPool2d()(t).numpy(), x.max((2, 3)))
    np.testing.assert_allclose(nn.Upsample(size=(9, 8), mode="bilinear")(t).numpy(),
                               pool_refs.interpolate(x, 9, 8, "bilinear"), rtol=1e-10)
    cols = nn.Unfold(3, padding=1)(t).numpy()
    np.testing.assert_allclose(cols, unfold_ref(x, 3, padding=1), rtol=1e-12)


def test_maxpool_return_indices_and_unpool_roundtrip():
    x = _x(2, 3, 4, 6, seed=6)
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert idx.dtype == np.int64 and not idx.requires_grad and y.requires_grad
    up = nn.MaxUnpool2d(2)(y, idx)
    assert up.shape == x.shape
    # every pooled maximum lands back where it came from
    d = x.numpy()
    np.testing.assert_array_equal(up.numpy()[up.numpy() != 0], d[up.numpy() != 0])
    unpool = nn.MaxUnpool2d(2)
    assert ox.gradcheck(lambda v: unpool(v, idx), (y.detach().requires_grad_(),))
    y1, i1 = F.max_pool1d(_x(1, 2, 6), 2, return_indices=True)
    assert ox.gradcheck(lambda v: F.max_unpool1d(v, i1, 2), (y1.detach().requires_grad_(),))
    assert nn.MaxUnpool2d(2)(y, idx, output_size=(5, 7)).shape == (2, 3, 5, 7)


def test_functional_float32_and_chain():
    x = ox.randn(2, 3, 8, 8, requires_grad=True)
    w = ox.randn(4, 3, 3, 3, requires_grad=True)
    y = F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2)
    assert y.dtype == np.float32 and y.shape == (2, 4, 4, 4)
    F.adaptive_avg_pool2d(y, 1).sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape
    assert x.grad.dtype == np.float32


# ----------------------------------------------------------------------------- training


def test_small_cnn_trains_on_digits():
    """Conv2d-ReLU-MaxPool-Conv2d-ReLU-MaxPool-Linear on the bundled 8x8 digits reaches
    >= 90% held-out accuracy in a few epochs of Adam."""
    from oxinet.data import load_digits

    ox.manual_seed(0)
    x, y = load_digits()
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(x))
    x, y = x[perm], y[perm]
    xtr, ytr, xte, yte = x[:1400], y[:1400], x[1400:], y[1400:]
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(128, 10),
    )
    opt = ox.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(6):
        order = rng.permutation(len(xtr))
        for i in range(0, len(xtr), 64):
            b = order[i:i + 64]
            loss = F.cross_entropy(model(_T(xtr[b])), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with ox.no_grad():
        acc = float((model(_T(xte)).numpy().argmax(1) == yte).mean())
    assert acc >= 0.90, acc
