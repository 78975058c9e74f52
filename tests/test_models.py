"""Model zoo: parameter counts against the literature, forward shapes, summary, transfer."""

import numpy as np
import pytest

import oxinet
from oxinet import nn

pytestmark = pytest.mark.skipif(not hasattr(nn, "Conv2d"), reason="needs the kernel-backed layers (branch 'layers')")

if hasattr(nn, "Conv2d"):
    from oxinet import models as M


def n_params(m):
    return sum(int(p.numel()) for p in m.parameters())


# Counts published by the papers / torchvision for the original input sizes (counted by
# construction: the classifier widths are fixed by the input size, no forward is needed).
@pytest.mark.parametrize("build, expected", [
    (lambda: M.LeNet5(variant="classic"), 61_706),
    (lambda: M.LeNet5(variant="modern"), 61_706),
    (lambda: M.AlexNet(), 61_100_840),
    (lambda: M.vgg16(), 138_357_544),
    (lambda: M.vgg19(), 143_667_240),
    (lambda: M.resnet18(), 11_689_512),
    (lambda: M.resnet34(), 21_797_672),
    (lambda: M.resnet50(), 25_557_032),
    (lambda: M.resnet101(), 44_549_160),
    (lambda: M.resnet152(), 60_192_808),
    (lambda: M.mobilenet_v2(), 3_504_872),
    (lambda: M.mobilenet_v1(), 4_231_976),
    (lambda: M.googlenet(aux_logits=False, branch3_kernel=3), 6_624_904),
    (lambda: M.googlenet(aux_logits=True, branch3_kernel=3), 13_004_888),
], ids=["lenet5-classic", "lenet5-modern", "alexnet", "vgg16", "vgg19", "resnet18", "resnet34",
        "resnet50", "resnet101", "resnet152", "mobilenet_v2", "mobilenet_v1", "googlenet", "googlenet-aux"])
def test_parameter_counts_match_literature(build, expected, monkeypatch):
    # counting needs the shapes only: skip the random initialisation of ~10^8 weights
    for name in ("kaiming_uniform_", "kaiming_normal_", "uniform_", "normal_", "xavier_uniform_", "zeros_",
                 "ones_", "constant_", "trunc_normal_"):
        if hasattr(nn.init, name):
            monkeypatch.setattr(nn.init, name, lambda t, *a, **k: t)
    m = build()
    assert n_params(m) == expected
    assert M.count_parameters(m) == expected


def test_lenet_classic_count_by_hand():
    # C1 6*(25+1), C3 16*(6*25+1), F5 400*120+120, F6 120*84+84, out 84*10+10
    assert n_params(M.LeNet5()) == 6 * 26 + 16 * 151 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert isinstance(M.LeNet5().features[1], nn.Tanh)
    assert isinstance(M.LeNet5(variant="modern").features[2], nn.MaxPool2d)


def test_googlenet_paper_5x5_count():
    # each "5x5" branch: r*c*(25-9) more weights than torchvision's 3x3 layout
    extra = sum(t[4] * t[5] * 16 for t in M.inception._TABLE.values())
    assert n_params(M.googlenet(aux_logits=False)) == 6_624_904 + extra == 7_005_832


def test_vgg16_parameter_names_follow_torchvision():
    m = M.vgg16(num_classes=4, input_size=32, width=1 / 16, hidden=8)
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    expected = [f"features.{i}.{k}" for i in convs for k in ("weight", "bias")]
    expected += [f"classifier.{i}.{k}" for i in (0, 3, 6) for k in ("weight", "bias")]
    assert [n for n, _ in m.named_parameters()] == expected
    assert m.feature_layers()["block4_conv2"] == "20" and m.feature_layers()["block1_conv1"] == "1"
    out = m.extract(_x((1, 3, 32, 32)), ["block1_conv1", "block3_conv1"])
    assert tuple(out["block1_conv1"].shape) == (1, 4, 32, 32)
    assert tuple(out["block3_conv1"].shape) == (1, 16, 8, 8)


def _x(shape, seed=0):
    return oxinet.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("build, shape, out", [
    (lambda: M.LeNet5(), (2, 1, 32, 32), (2, 10)),
    (lambda: M.LeNet5(variant="modern", padding=2, input_size=28, num_classes=7), (2, 1, 28, 28), (2, 7)),
    (lambda: M.AlexNet(num_classes=5, input_size=63, width=0.1, hidden=32), (2, 3, 63, 63), (2, 5)),
    (lambda: M.vgg16(num_classes=4, input_size=32, width=1 / 16, hidden=16), (2, 3, 32, 32), (2, 4)),
    (lambda: M.vgg19(num_classes=4, input_size=64, width=1 / 32, hidden=8, batch_norm=True), (1, 3, 64, 64), (1, 4)),
    (lambda: M.resnet18(num_classes=3, width=8, stem="small", in_channels=1), (2, 1, 8, 8), (2, 3)),
    (lambda: M.resnet50(num_classes=3, width=4), (2, 3, 32, 32), (2, 3)),
    (lambda: M.mobilenet_v1(num_classes=6, width_mult=0.25), (2, 3, 32, 32), (2, 6)),
    (lambda: M.mobilenet_v2(num_classes=6, width_mult=0.25), (2, 3, 32, 32), (2, 6)),
    (lambda: M.MiniXception(num_classes=5, in_channels=1, stem=4, widths=(8, 16), middle=1), (2, 1, 16, 16), (2, 5)),
    (lambda: M.FCN(num_classes=3, widths=(4, 8, 8, 16), fc_channels=16), (2, 3, 32, 32), (2, 3, 32, 32)),
    (lambda: M.UNet(num_classes=2, in_channels=1, base=4, depth=2), (2, 1, 16, 16), (2, 2, 16, 16)),
    (lambda: M.UNet(num_classes=3, in_channels=3, base=4, depth=3, bilinear=True, batch_norm=False), (1, 3, 16, 24),
     (1, 3, 16, 24)),
], ids=["lenet", "lenet-modern-28", "alexnet", "vgg16", "vgg19-bn", "resnet18-small", "resnet50",
        "mobilenet_v1", "mobilenet_v2", "xception", "fcn", "unet", "unet-bilinear"])
def test_forward_shapes(build, shape, out):
    m = build()
    m.eval()
    with oxinet.no_grad():
        y = m(_x(shape))
    assert tuple(y.shape) == out
    assert np.isfinite(y.numpy()).all()


def test_googlenet_aux_heads_in_train_mode_only():
    m = M.googlenet(num_classes=4, width=0.125, dropout=0.0, dropout_aux=0.0)
    m.train()
    out = m(_x((2, 3, 64, 64)))
    assert isinstance(out, M.GoogLeNetOutputs)
    assert [tuple(o.shape) for o in out] == [(2, 4)] * 3
    m.eval()
    with oxinet.no_grad():
        y = m(_x((2, 3, 64, 64)))
    assert tuple(y.shape) == (2, 4)
    # total loss with the auxiliary heads (weight 0.3) reaches every parameter
    m.train()
    out = m(_x((2, 3, 64, 64)))
    t = np.array([0, 3])
    loss = nn.functional.cross_entropy(out.logits, t) + 0.3 * (
        nn.functional.cross_entropy(out.aux_logits1, t) + nn.functional.cross_entropy(out.aux_logits2, t))
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_inception_module_concatenates_branches():
    blk = M.Inception(8, 4, 3, 5, 2, 6, 7)
    y = blk(_x((1, 8, 6, 6)))
    assert tuple(y.shape) == (1, 4 + 5 + 6 + 7, 6, 6)


def test_residual_blocks_identity_and_projection():
    ident = M.BasicBlock(8, 8, 1)
    proj = M.BasicBlock(8, 16, 2)
    assert ident.downsample is None and proj.downsample is not None
    assert tuple(proj(_x((1, 8, 8, 8))).shape) == (1, 16, 4, 4)
    b = M.Bottleneck(16, 4, 1)          # 16 -> 4*4 = 16: identity shortcut
    assert b.downsample is None
    # identity block with zeroed last BN is exactly relu(x)
    ident.eval()
    nn.init.zeros_(ident.bn2.weight)
    nn.init.zeros_(ident.bn2.bias)
    x = _x((1, 8, 5, 5))
    with oxinet.no_grad():
        np.testing.assert_array_equal(ident(x).numpy(), np.maximum(x.numpy(), 0))


def test_mobilenet_blocks():
    ir = M.InvertedResidual(8, 8, 1, 6)
    assert ir.use_res_connect
    assert not M.InvertedResidual(8, 16, 1, 6).use_res_connect
    dw = M.DepthwiseSeparable(8, 16, 2)
    assert tuple(dw.depthwise[0].weight.shape) == (8, 1, 3, 3)
    assert tuple(dw(_x((1, 8, 8, 8))).shape) == (1, 16, 4, 4)
    sep = M.SeparableConv2d(4, 6)
    assert n_params(sep) == 4 * 9 + 4 * 6


def test_unet_skip_connections_carry_detail():
    # with the deepest levels zeroed out, the output still depends on the input through the skips
    m = M.UNet(num_classes=2, in_channels=1, base=4, depth=2)
    m.eval()
    with oxinet.no_grad():
        for p in m.down[-1].parameters():
            p.zero_()
        a = m(_x((1, 1, 8, 8), 1)).numpy()
        b = m(_x((1, 1, 8, 8), 2)).numpy()
    assert not np.allclose(a, b)
    # the concatenation doubles the decoder's input channels
    assert tuple(m.up_conv[0][0][0].weight.shape)[1] == 2 * 8


def test_backward_reaches_all_parameters():
    m = M.resnet18(num_classes=3, width=4, stem="small", in_channels=1)
    y = m(_x((4, 1, 8, 8)))
    nn.functional.cross_entropy(y, np.array([0, 1, 2, 0])).backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), n


def test_bad_arguments():
    with pytest.raises(ValueError, match="'input_size'"):
        M.LeNet5(input_size=8)
    with pytest.raises(ValueError, match="'variant'"):
        M.LeNet5(variant="fancy")
    with pytest.raises(ValueError, match="'num_classes'"):
        M.resnet18(num_classes=0)
    with pytest.raises(ValueError, match="'stem'"):
        M.resnet18(stem="tiny")
    with pytest.raises(ValueError, match="'cfg'"):
        M.VGG("vgg7")
    with pytest.raises(ValueError, match="'input_size'"):
        M.AlexNet(input_size=32)
    with pytest.raises(ValueError, match="divisible by 4"):
        M.UNet(base=2, depth=2)(_x((1, 1, 10, 10)))


# ----------------------------------------------------------------------------- summary


def test_summary_rows_and_totals():
    m = M.LeNet5()
    s = M.summary(m, (1, 32, 32))
    types = [r.type for r in s.rows]
    assert types == ["Conv2d", "Tanh", "AvgPool2d", "Conv2d", "Tanh", "AvgPool2d", "Flatten",
                     "Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert s.rows[0].output_shape == (2, 6, 28, 28)
    assert s.rows[3].output_shape == (2, 16, 10, 10)
    assert s.rows[6].output_shape == (2, 400)
    assert [r.params for r in s.rows if r.params] == [156, 2416, 48120, 10164, 850]
    assert s.total_params == s.trainable_params == 61_706 and s.non_trainable_params == 0
    assert sum(r.params for r in s.rows) == s.total_params
    text = str(s)
    assert "Total params: 61,706" in text and "features.0 (Conv2d)" in text and "(None, 6, 28, 28)" in text
    assert m.training  # mode restored


def test_summary_counts_frozen_and_buffers():
    m = M.resnet18(num_classes=5, width=4, stem="small", in_channels=1)
    M.freeze(m, "layer1")
    s = M.summary(m, (1, 8, 8))
    frozen = sum(p.numel() for n, p in m.named_parameters() if n.startswith("layer1."))
    assert s.non_trainable_params == frozen > 0
    assert s.total_params == n_params(m)
    assert sum(r.params for r in s.rows) == s.total_params
    assert s.buffer_elements > 0
    assert s.output_shape == (2, 5)


def test_summary_of_keras_model_and_multi_output():
    s = M.summary(oxinet.Model(M.LeNet5(variant="modern")), (1, 32, 32))
    assert s.total_params == 61_706 and s.output_shape == (2, 10)
    g = M.googlenet(num_classes=3, width=0.125)
    g.train()
    s = M.summary(g, (3, 64, 64))          # runs in eval mode: no auxiliary outputs
    assert s.output_shape == (2, 3) and g.training
    assert not any(r.name.startswith("aux") for r in s.rows)
    assert s.total_params == n_params(g)


def test_summary_bad_input():
    with pytest.raises(ValueError, match="'input_shape'"):
        M.summary(M.LeNet5(), (1, 0, 32))
    with pytest.raises(TypeError, match="'model'"):
        M.summary(object(), (1, 32, 32))


# ----------------------------------------------------------------------------- transfer


def test_freeze_patterns_and_layers():
    m = M.resnet18(num_classes=5, width=4, stem="small", in_channels=1)
    names = M.freeze(m, ["conv1.*", "layer1"])
    assert "conv1.weight" in names and any(n.startswith("layer1.") for n in names)
    assert all(not p.requires_grad for n, p in m.named_parameters() if n in names)
    assert all(p.requires_grad for n, p in m.named_parameters() if n not in names)
    M.unfreeze(m, layers=[m.layer1])
    assert all(p.requires_grad for n, p in m.named_parameters() if n.startswith("layer1."))
    M.freeze(m, layers="layer2")
    assert not m.layer2[0].conv1.weight.requires_grad
    M.freeze(m, "re:^fc\\.")
    assert not m.fc.weight.requires_grad
    with pytest.raises(ValueError, match="'patterns'"):
        M.freeze(m, "nothing_like_this")
    with pytest.raises(ValueError, match="'layers'"):
        M.freeze(m, layers="layer9")


def test_replace_head():
    m = M.vgg16(num_classes=10, input_size=32, width=1 / 16, hidden=16)
    assert M.find_head(m) == "classifier.6"
    new = M.replace_head(m, 3)
    assert m.classifier[6] is new and new.out_features == 3 and new.in_features == 16
    m.eval()
    with oxinet.no_grad():
        assert tuple(m(_x((2, 3, 32, 32))).shape) == (2, 3)
    r = M.resnet18(num_classes=10, width=4, stem="small")
    M.replace_head(r, 2)
    assert r.fc.out_features == 2
    with pytest.raises(ValueError, match="'num_classes'"):
        M.replace_head(r, 0)
    with pytest.raises(ValueError, match="'name'"):
        M.replace_head(r, 2, name="conv1")


def test_fine_tune_keeps_frozen_weights_bit_identical():
    oxinet.manual_seed(0)
    m = M.resnet18(num_classes=10, width=4, stem="small", in_channels=1)
    params = M.fine_tune(m, num_classes=3)
    assert params == [m.fc.weight, m.fc.bias]
    M.set_batchnorm_eval(m)
    before = {n: p.numpy().copy() for n, p in m.named_parameters()}
    stats_before = {n: b.numpy().copy() for n, b in m.named_buffers()}
    opt = oxinet.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=1e-3)
    rng = np.random.default_rng(1)
    x = _x((8, 1, 8, 8))
    t = rng.integers(0, 3, 8)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(x), t)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    for n, p in m.named_parameters():
        if n.startswith("fc."):
            assert not np.array_equal(p.numpy(), before[n]), n
        else:
            assert np.array_equal(p.numpy(), before[n]), n
            assert p.grad is None, n
    for n, b in m.named_buffers():
        if not n.endswith("num_batches_tracked"):
            assert np.array_equal(b.numpy(), stats_before[n]), n
    assert losses[-1] < losses[0]
