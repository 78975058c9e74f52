"""The variational autoencoder (Kingma & Welling): a Gaussian encoder q(z|x), the
reparameterisation z = mu + sigma * eps, a Bernoulli decoder p(x|z), and the ELBO."""

from __future__ import annotations

import numpy as np

import oxinet
from oxinet import nn
from oxinet.tensor import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dims:
    -1/2 sum(1 + logvar - mu^2 - exp(logvar)). mu, logvar (N, D) -> (N,)."""
    return -0.5 * (1.0 + logvar - mu * mu - logvar.exp()).sum(dim=1)


def elbo_loss(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0):
    """Negative ELBO averaged over the batch: reconstruction (Bernoulli log-likelihood as
    BCE-with-logits, summed over features) + beta * KL. Returns (loss, recon, kl)."""
    n = x.shape[0]
    recon = nn.functional.binary_cross_entropy_with_logits(
        logits.reshape(n, -1), x.reshape(n, -1), reduction="sum") / n
    kl = gaussian_kl(mu, logvar).mean()
    return recon + beta * kl, recon, kl


class VAE(nn.Module):
    """x (N, in_features) in [0, 1] -> (logits (N, in_features), mu (N, latent), logvar).

    In training mode z is sampled by reparameterisation (noise from oxinet's generator,
    so ``oxinet.manual_seed`` makes it repeatable); in eval mode z = mu.
    """

    def __init__(self, in_features: int, latent: int = 2, hidden: int = 256):
        super().__init__()
        self.latent = latent
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, in_features))

    def encode(self, x):
        h = self.body(x)
        return self.mu(h), self.logvar(h)

    def reparameterize(self, mu, logvar):
        if not self.training:
            return mu
        eps = oxinet.randn(*mu.shape, dtype=mu.dtype)
        return mu + (0.5 * logvar).exp() * eps

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decoder(self.reparameterize(mu, logvar)), mu, logvar

    def sample(self, n: int) -> np.ndarray:
        """n new samples: decoder probabilities for z ~ N(0, I), (n, in_features)."""
        with oxinet.no_grad():
            z = oxinet.randn(n, self.latent)
            return self.decoder(z).sigmoid().numpy()

    def traverse(self, values, dims=(0, 1)) -> np.ndarray:
        """Decoder probabilities on a grid over two latent dims (others 0):
        (len(values)^2, in_features), row-major over (dims[0], dims[1])."""
        values = np.asarray(values, np.float32)
        grid = np.zeros((len(values) ** 2, self.latent), np.float32)
        a, b = np.meshgrid(values, values, indexing="ij")
        grid[:, dims[0]], grid[:, dims[1]] = a.ravel(), b.ravel()
        with oxinet.no_grad():
            return self.decoder(oxinet.tensor(grid)).sigmoid().numpy()
