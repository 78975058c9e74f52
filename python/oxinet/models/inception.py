"""Inception v1 module and GoogLeNet (Szegedy et al., 2014).

An Inception module runs 1x1, 1x1->3x3, 1x1->5x5 and maxpool->1x1 branches in parallel and
concatenates them on the channel axis; the 1x1 "bottleneck" convolutions cut the cost of the
larger filters (course 3.2). Convolutions are conv (no bias) + BatchNorm (eps 1e-3) + ReLU as
in torchvision. In training mode GoogLeNet also returns the two auxiliary classifiers' logits
(after inception 4a and 4d), which the course adds to the loss with a small weight.

Parameter count at 224x224x3 -> 1000 without the auxiliary heads: 6,624,904 with
``branch3_kernel=3`` (torchvision's layout, which uses a 3x3 convolution in the "5x5" branch);
with the paper's 5x5 filters (the default here) it is 7,005,832.
"""

from __future__ import annotations

from collections import namedtuple

import oxinet
from oxinet import nn
from oxinet.models._blocks import check_positive, conv_bn_act

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


def _conv(i, o, k, stride=1, padding=None):
    return conv_bn_act(i, o, k, stride=stride, padding=padding, bn_eps=1e-3)


class Inception(nn.Module):
    """in_channels -> ch1x1 + ch3x3 + ch5x5 + pool_proj channels, same spatial size."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                 branch3_kernel: int = 5):
        super().__init__()
        self.branch1 = _conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(_conv(in_channels, ch3x3red, 1), _conv(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(_conv(in_channels, ch5x5red, 1), _conv(ch5x5red, ch5x5, branch3_kernel))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True), _conv(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        return oxinet.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: avgpool to 4x4 -> 1x1 conv 128 -> FC 1024 -> dropout 0.7 -> FC."""

    def __init__(self, in_channels, num_classes, dropout: float = 0.7):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = _conv(in_channels, 128, 1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(2048, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.flatten(self.conv(self.pool(x)))
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of the paper's table 1
_TABLE = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """input (N, in_channels, H, W) (224 in the paper, >= 32 works) -> logits (N, num_classes).

    With ``aux_logits=True`` and the module in training mode, forward returns
    ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``; in eval mode only the logits.
    ``width`` scales every branch's channels."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True,
                 dropout: float = 0.2, dropout_aux: float = 0.7, branch3_kernel: int = 5,
                 width: float = 1.0):
        super().__init__()
        check_positive(num_classes, "num_classes", "GoogLeNet")
        s = (lambda v: max(1, int(round(v * width))))
        self.aux_logits = aux_logits
        self.conv1 = _conv(in_channels, s(64), 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = _conv(s(64), s(64), 1)
        self.conv3 = _conv(s(64), s(192), 3)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        c = s(192)
        mods = {}
        for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
            cfg = [s(v) for v in _TABLE[name][1:]]
            m = Inception(c, *cfg, branch3_kernel=branch3_kernel)
            mods[name] = m
            c = m.out_channels
        self.inception3a, self.inception3b = mods["3a"], mods["3b"]
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a, self.inception4b, self.inception4c = mods["4a"], mods["4b"], mods["4c"]
        self.inception4d, self.inception4e = mods["4d"], mods["4e"]
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a, self.inception5b = mods["5a"], mods["5b"]
        if aux_logits:
            self.aux1 = InceptionAux(mods["4a"].out_channels, num_classes, dropout_aux)
            self.aux2 = InceptionAux(mods["4d"].out_channels, num_classes, dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if (self.aux1 is not None and self.training) else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if (self.aux2 is not None and self.training) else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(self.flatten(self.avgpool(x))))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


def googlenet(num_classes: int = 1000, **kwargs) -> GoogLeNet:
    return GoogLeNet(num_classes=num_classes, **kwargs)
