"""LeNet-5 (LeCun et al., 1998) in its classic and modern forms.

Classic: 32x32x1 -> conv5x5(6) -> tanh -> avgpool2 -> conv5x5(16) -> tanh -> avgpool2 ->
FC 120 -> tanh -> FC 84 -> tanh -> FC num_classes. Every C3 map sees all 6 S2 maps (the
paper's sparse C3 table is not reproduced) and the subsampling layers have no trainable
coefficients, so the classic network has 61,706 parameters for 10 classes.
Modern: the same shapes with ReLU and max pooling.
"""

from __future__ import annotations

from oxinet import nn
from oxinet.models._blocks import check_positive, spatial_after


class LeNet5(nn.Module):
    """LeNet-5. ``variant="classic"`` (tanh, average pooling) or ``"modern"`` (ReLU, max pooling).

    input (N, in_channels, input_size, input_size) -> logits (N, num_classes). ``padding`` is
    added to the first convolution (2 for 28x28 MNIST-sized inputs).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32,
                 variant: str = "classic", padding: int = 0):
        super().__init__()
        check_positive(num_classes, "num_classes", "LeNet5")
        check_positive(in_channels, "in_channels", "LeNet5")
        if variant not in ("classic", "modern"):
            raise ValueError(f"LeNet5: 'variant' must be 'classic' or 'modern', got {variant!r}")
        self.variant = variant
        act = nn.Tanh if variant == "classic" else nn.ReLU
        pool = nn.AvgPool2d if variant == "classic" else nn.MaxPool2d
        h, w = spatial_after("LeNet5", input_size, [(5, 1, padding), (2, 2, 0), (5, 1, 0), (2, 2, 0)])
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=padding), act(), pool(2, 2),
            nn.Conv2d(6, 16, 5), act(), pool(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * h * w, 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def lenet5(num_classes: int = 10, **kwargs) -> LeNet5:
    return LeNet5(num_classes=num_classes, **kwargs)
