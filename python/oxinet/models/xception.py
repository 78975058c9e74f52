"""Xception-style blocks (Chollet, 2017): separable convolutions (depthwise 3x3 + pointwise
1x1, no activation in between) in residual blocks whose shortcut is a strided 1x1 conv."""

from __future__ import annotations

from oxinet import nn
from oxinet.models._blocks import check_positive, conv_bn_act


class SeparableConv2d(nn.Module):
    """Depthwise ``kernel_size`` conv (groups = in_channels) then 1x1 pointwise, no bias."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """[ReLU -> SeparableConv -> BN] x reps, then 3x3/2 max pool when ``stride=2``; residual
    shortcut (1x1 conv stride + BN when the shape changes)."""

    def __init__(self, in_channels, out_channels, reps=2, stride=1, start_with_relu=True):
        super().__init__()
        layers = []
        c = in_channels
        for i in range(reps):
            if start_with_relu or i > 0:
                layers.append(nn.ReLU())
            layers += [SeparableConv2d(c, out_channels), nn.BatchNorm2d(out_channels)]
            c = out_channels
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.body = nn.Sequential(*layers)
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(out_channels))
        else:
            self.skip = None

    def forward(self, x):
        s = x if self.skip is None else self.skip(x)
        return self.body(x) + s


class MiniXception(nn.Module):
    """A small Xception-style classifier: conv stem, ``widths`` separable residual blocks
    (each halving the resolution), global average pool, linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, stem: int = 32,
                 widths=(64, 128, 256), middle: int = 0):
        super().__init__()
        check_positive(num_classes, "num_classes", "MiniXception")
        self.stem = nn.Sequential(conv_bn_act(in_channels, stem, 3), conv_bn_act(stem, stem, 3))
        blocks, c = [], stem
        for i, w in enumerate(widths):
            blocks.append(XceptionBlock(c, w, reps=2, stride=2, start_with_relu=i > 0))
            c = w
        for _ in range(middle):
            blocks.append(XceptionBlock(c, c, reps=3, stride=1))
        self.blocks = nn.Sequential(*blocks)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.avgpool(self.relu(self.blocks(self.stem(x))))))
