"""VGG (Simonyan & Zisserman, 2014): stacks of 3x3 same convolutions and 2x2 max pools.

VGG-16 at 224x224x3 -> 1000 has 138,357,544 parameters, VGG-19 143,667,240.
"""

from __future__ import annotations

from oxinet import nn
from oxinet.models._blocks import check_positive

CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """input (N, in_channels, input_size, input_size) -> logits (N, num_classes).

    ``cfg`` is a list of conv widths and "M" (max pool). ``width`` scales the conv widths,
    ``hidden`` is the FC width (4096). The classifier's input is 512 * (input_size / 32)^2
    (25088 at 224). The convolutions are kept in ``features`` as in the paper's naming
    (block b, conv c is ``features.<i>``); ``feature_layers()`` lists the ReLU outputs by
    Keras-style names (``block1_conv1`` ...), which style transfer uses. Parameter names
    match torchvision's VGG (``features.0.weight`` ... ``classifier.6.bias``), so its weights
    exported as safetensors load with ``load_state_dict``."""

    def __init__(self, cfg="vgg16", num_classes: int = 1000, in_channels: int = 3,
                 input_size: int = 224, batch_norm: bool = False, dropout: float = 0.5,
                 width: float = 1.0, hidden: int = 4096):
        super().__init__()
        check_positive(num_classes, "num_classes", "VGG")
        if isinstance(cfg, str):
            if cfg not in CONFIGS:
                raise ValueError(f"VGG: 'cfg' must be one of {sorted(CONFIGS)} or a list, got {cfg!r}")
            cfg = CONFIGS[cfg]
        layers, names = [], {}
        c, size, block, conv = in_channels, input_size, 1, 1
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
                if size < 1:
                    raise ValueError(f"VGG: 'input_size' {input_size} is too small for {cfg.count('M')} poolings")
                block, conv = block + 1, 1
                continue
            out = max(1, int(round(v * width)))
            layers.append(nn.Conv2d(c, out, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            names[f"block{block}_conv{conv}"] = str(len(layers) - 1)
            conv += 1
            c = out
        self.features = nn.Sequential(*layers)
        self._layer_names = names
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(c * size * size, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def feature_layers(self) -> dict:
        """Keras-style names of the conv+ReLU outputs -> index in ``features``."""
        return dict(self._layer_names)

    def extract(self, x, names):
        """Run ``features`` and return {name: activation} for the requested layer names."""
        wanted = {self._layer_names[n]: n for n in names}
        out = {}
        for idx, layer in self.features._modules.items():
            x = layer(x)
            if idx in wanted:
                out[wanted[idx]] = x
                if len(out) == len(wanted):
                    break
        return out

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def vgg16(num_classes: int = 1000, **kwargs) -> VGG:
    return VGG("vgg16", num_classes=num_classes, **kwargs)


def vgg19(num_classes: int = 1000, **kwargs) -> VGG:
    return VGG("vgg19", num_classes=num_classes, **kwargs)
