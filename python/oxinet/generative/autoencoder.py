"""Autoencoders: an encoder to a small code (the bottleneck) and a decoder back.
The trained ``encoder`` is reusable as a feature extractor."""

from __future__ import annotations

from oxinet import nn


def _mlp(sizes, last_activation=None) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if last_activation is not None:
        layers.append(last_activation)
    return nn.Sequential(*layers)


class DenseAutoencoder(nn.Module):
    """x (N, in_features) -> code (N, latent) -> reconstruction logits (N, in_features).

    ``hidden`` lists the encoder's hidden widths (the decoder mirrors them). The decoder
    outputs logits: train with ``BCEWithLogitsLoss`` for data in [0, 1] (or MSE on
    ``sigmoid(logits)``).
    """

    def __init__(self, in_features: int, latent: int = 16, hidden=(128,)):
        super().__init__()
        sizes = [in_features, *hidden, latent]
        self.encoder = _mlp(sizes)
        self.decoder = _mlp(sizes[::-1])

    def encode(self, x):
        return self.encoder(x)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """Images (N, C, H, W) with H, W divisible by 4 -> code (N, latent) -> logits (N, C, H, W).

    Encoder: two stride-2 3x3 convolutions (C -> width -> 2 width) and a linear layer;
    decoder: a linear layer and two stride-2 transposed convolutions back to full size.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 8, latent: int = 16, width: int = 16):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"ConvAutoencoder: 'image_size' must be divisible by 4, got {image_size}")
        s = image_size // 4
        self.shape = (2 * width, s, s)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * width * s * s, latent),
        )
        self.decoder_fc = nn.Sequential(nn.Linear(latent, 2 * width * s * s), nn.ReLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, in_channels, 3, stride=2, padding=1, output_padding=1),
        )

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        h = self.decoder_fc(z)
        return self.decoder_conv(h.reshape((h.shape[0],) + self.shape))

    def forward(self, x):
        return self.decode(self.encode(x))
