"""MobileNet v1 (depthwise separable convolutions) and v2 (inverted residual bottlenecks).

v1 (Howard et al., 2017): a 3x3 depthwise convolution (groups = channels) followed by a 1x1
pointwise convolution, each with BatchNorm + ReLU; 4,231,976 parameters at 224 -> 1000.
v2 (Sandler et al., 2018): 1x1 expansion (factor t) -> 3x3 depthwise -> 1x1 linear
projection, with a residual connection when stride is 1 and the widths match; ReLU6;
3,504,872 parameters at 224 -> 1000 (torchvision's layout).
"""

from __future__ import annotations

from oxinet import nn
from oxinet.models._blocks import check_positive, conv_bn_act


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise (stride) + BN + act, then 1x1 pointwise + BN + act."""

    def __init__(self, in_channels, out_channels, stride=1, act="relu"):
        super().__init__()
        self.depthwise = conv_bn_act(in_channels, in_channels, 3, stride=stride, groups=in_channels, act=act)
        self.pointwise = conv_bn_act(in_channels, out_channels, 1, act=act)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


_V1 = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
    """input (N, in_channels, H, W) -> logits (N, num_classes); ``width_mult`` is alpha."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.0, first_stride: int = 2):
        super().__init__()
        check_positive(num_classes, "num_classes", "MobileNetV1")
        c = max(8, int(32 * width_mult))
        layers = [conv_bn_act(in_channels, c, 3, stride=first_stride)]
        for out, stride in _V1:
            out = max(8, int(out * width_mult))
            layers.append(DepthwiseSeparable(c, out, stride))
            c = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, num_classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


class InvertedResidual(nn.Module):
    def __init__(self, in_channels, out_channels, stride, expand_ratio):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(in_channels, hidden, 1, act="relu6"))
        layers += [conv_bn_act(hidden, hidden, 3, stride=stride, groups=hidden, act="relu6"),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_res_connect else y


_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
       (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """input (N, in_channels, H, W) -> logits (N, num_classes). ``settings`` rows are
    (t expansion, c channels, n repeats, s stride of the first)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2, settings=_V2, last_channel: int = 1280, first_stride: int = 2):
        super().__init__()
        check_positive(num_classes, "num_classes", "MobileNetV2")
        c = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult))
        layers = [conv_bn_act(in_channels, c, 3, stride=first_stride, act="relu6")]
        for t, ch, n, s in settings:
            out = _make_divisible(ch * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(conv_bn_act(c, self.last_channel, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def mobilenet_v1(num_classes: int = 1000, **kw) -> MobileNetV1:
    return MobileNetV1(num_classes, **kw)


def mobilenet_v2(num_classes: int = 1000, **kw) -> MobileNetV2:
    return MobileNetV2(num_classes, **kw)
