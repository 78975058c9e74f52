"""AlexNet (Krizhevsky et al., 2012), single-tower form as in torchvision (64/192/384/256/256
filters): 61,100,840 parameters at 224x224x3 -> 1000."""

from __future__ import annotations

from oxinet import nn
from oxinet.models._blocks import check_positive, spatial_after


class AlexNet(nn.Module):
    """input (N, in_channels, input_size, input_size) -> logits (N, num_classes).

    The classifier's input width follows the feature map at ``input_size`` (6x6 at 224), so
    other sizes (>= 63) work without adaptive pooling. ``width`` scales every layer's filters
    and ``hidden`` is the FC width (4096 in the paper)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                 dropout: float = 0.5, width: float = 1.0, hidden: int = 4096):
        super().__init__()
        check_positive(num_classes, "num_classes", "AlexNet")
        c = [max(1, int(round(v * width))) for v in (64, 192, 384, 256, 256)]
        h, w = spatial_after("AlexNet", input_size, [(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0),
                                                     (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)])
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c[4] * h * w, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def alexnet(num_classes: int = 1000, **kwargs) -> AlexNet:
    return AlexNet(num_classes=num_classes, **kwargs)
