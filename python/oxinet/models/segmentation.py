"""Fully convolutional segmentation networks: FCN-8s-style and U-Net.

Both map (N, in_channels, H, W) to per-pixel class scores (N, num_classes, H, W).
"""

from __future__ import annotations

import oxinet
from oxinet import nn
from oxinet.models._blocks import check_positive, conv_bn_act


def _double_conv(i, o, batch_norm=True):
    if batch_norm:
        return nn.Sequential(conv_bn_act(i, o, 3), conv_bn_act(o, o, 3))
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU())


class FCN(nn.Module):
    """FCN-8s layout (Long et al., 2015) on a small VGG-like encoder.

    ``widths`` gives one stage (two 3x3 convs + 2x2 max pool) per entry; the "fully connected"
    layers are convolutions (``fc_channels``, kernel 1: the FC-to-conv view of course F36), and
    scores from the last three stages are fused by 2x transposed convolutions before the final
    upsampling. H and W must be divisible by 2**len(widths)."""

    def __init__(self, num_classes: int = 21, in_channels: int = 3, widths=(32, 64, 128, 256, 256),
                 fc_channels: int = 512, batch_norm: bool = True):
        super().__init__()
        check_positive(num_classes, "num_classes", "FCN")
        if len(widths) < 3:
            raise ValueError(f"FCN: 'widths' needs at least 3 stages, got {tuple(widths)}")
        stages, c = [], in_channels
        for w in widths:
            stages.append(nn.Sequential(_double_conv(c, w, batch_norm), nn.MaxPool2d(2, 2)))
            c = w
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Sequential(nn.Conv2d(c, fc_channels, 1), nn.ReLU(), nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU())
        self.score_last = nn.Conv2d(fc_channels, num_classes, 1)
        self.score_mid = nn.Conv2d(widths[-2], num_classes, 1)
        self.score_early = nn.Conv2d(widths[-3], num_classes, 1)
        self.up2a = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.up2b = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        f = 2 ** (len(widths) - 2)
        self.factor = 2 ** len(widths)
        self.up_final = nn.ConvTranspose2d(num_classes, num_classes, 2 * f, stride=f, padding=f // 2, bias=False)

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(f"FCN: input height and width must be divisible by {self.factor}, "
                             f"got input shape {tuple(x.shape)}")
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        y = self.score_last(self.fc(x))
        y = self.up2a(y) + self.score_mid(feats[-2])
        y = self.up2b(y) + self.score_early(feats[-3])
        return self.up_final(y)


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) with "same" 3x3 convolutions (so no cropping).

    ``depth`` down steps, ``base`` channels at the top doubled per level; the decoder
    upsamples with 2x2 transposed convolutions (``bilinear=False``) or nearest/bilinear
    upsampling + 1x1 conv, concatenates the encoder's skip and applies a double conv.
    H and W must be divisible by 2**depth."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1, base: int = 64, depth: int = 4,
                 batch_norm: bool = True, bilinear: bool = False):
        super().__init__()
        check_positive(num_classes, "num_classes", "UNet")
        check_positive(depth, "depth", "UNet")
        self.depth = depth
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.inc = _double_conv(in_channels, widths[0], batch_norm)
        self.pool = nn.MaxPool2d(2, 2)
        self.down = nn.ModuleList([_double_conv(widths[i], widths[i + 1], batch_norm) for i in range(depth)])
        ups, convs = [], []
        for i in range(depth, 0, -1):
            if bilinear:
                ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                         nn.Conv2d(widths[i], widths[i - 1], 1)))
            else:
                ups.append(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2))
            convs.append(_double_conv(2 * widths[i - 1], widths[i - 1], batch_norm))
        self.up = nn.ModuleList(ups)
        self.up_conv = nn.ModuleList(convs)
        self.outc = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        f = 2 ** self.depth
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"UNet: input height and width must be divisible by {f}, got input shape {tuple(x.shape)}")
        x = self.inc(x)
        skips = [x]
        for d in self.down:
            x = d(self.pool(x))
            skips.append(x)
        skips.pop()
        for up, conv in zip(self.up, self.up_conv):
            x = up(x)
            x = conv(oxinet.cat([skips.pop(), x], dim=1))
        return self.outc(x)


def unet(num_classes: int = 2, **kw) -> UNet:
    return UNet(num_classes, **kw)


def fcn(num_classes: int = 21, **kw) -> FCN:
    return FCN(num_classes, **kw)
