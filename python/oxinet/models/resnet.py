"""ResNet (He et al., 2015): residual blocks a[l+2] = g(z[l+2] + a[l]) (course F37).

``BasicBlock`` (two 3x3 convolutions; ResNet-18/34) and ``Bottleneck`` (1x1 reduce, 3x3,
1x1 expand x4; ResNet-50/101/152, stride on the 3x3 as in torchvision's v1.5). When the
shape changes the shortcut is a projection (1x1 conv with stride + BatchNorm; the course's
"convolutional block"), otherwise the identity (the "identity block").
Parameter counts at 224x224x3 -> 1000: ResNet-18 11,689,512; ResNet-34 21,797,672;
ResNet-50 25,557,032; ResNet-101 44,549,160; ResNet-152 60,192,808.
"""

from __future__ import annotations

from oxinet import nn
from oxinet.nn.layers import bn_act
from oxinet.models._blocks import check_positive


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.downsample = _shortcut(in_channels, out, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = bn_act(self.bn1, self.relu, self.conv1(x))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(in_channels, out, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = bn_act(self.bn1, self.relu, self.conv1(x))
        y = bn_act(self.bn2, self.relu, self.conv2(y))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _shortcut(in_channels, out_channels, stride):
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class ResNet(nn.Module):
    """input (N, in_channels, H, W) -> logits (N, num_classes); any H, W (global average pool).

    ``layers``: blocks per stage; ``width``: channels of the first stage (64), doubled per
    stage. ``stem="imagenet"`` is conv7x7/2 + maxpool3x3/2; ``stem="small"`` is one 3x3
    stride-1 convolution without pooling, for 8x8 to 32x32 inputs (digits, CIFAR)."""

    def __init__(self, block, layers, num_classes: int = 1000, in_channels: int = 3,
                 width: int = 64, stem: str = "imagenet", zero_init_residual: bool = False):
        super().__init__()
        check_positive(num_classes, "num_classes", "ResNet")
        if stem not in ("imagenet", "small"):
            raise ValueError(f"ResNet: 'stem' must be 'imagenet' or 'small', got {stem!r}")
        self.stem_kind = stem
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        c = width
        stages = []
        for i, n in enumerate(layers):
            channels = width * 2 ** i
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(c, channels, stride))
                c = channels * block.expansion
            stages.append(nn.Sequential(*blocks))
        for i, s in enumerate(stages):
            setattr(self, f"layer{i + 1}", s)
        self.num_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else (
                    getattr(m, "bn2", None) if isinstance(m, BasicBlock) else None)
                if last is not None:
                    nn.init.zeros_(last.weight)

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward(self, x):
        return self.fc(self.flatten(self.avgpool(self.forward_features(x))))


def resnet18(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, **kw)


def resnet34(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, **kw)


def resnet50(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, **kw)


def resnet101(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes, **kw)


def resnet152(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes, **kw)
