"""Generative adversarial networks (Goodfellow et al.): the discriminator's loss and the
generator's minimax or non-saturating loss, and a training loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import oxinet
from oxinet import nn
from oxinet.tensor import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-[log D(x) + log(1 - D(G(z)))] averaged: D should say 1 on data, 0 on fakes."""
    bce = nn.functional.binary_cross_entropy_with_logits
    ones = oxinet.ones(*real_logits.shape, dtype=real_logits.dtype)
    zeros = oxinet.zeros(*fake_logits.shape, dtype=fake_logits.dtype)
    return bce(real_logits, ones) + bce(fake_logits, zeros)


def generator_loss(fake_logits: Tensor, kind: str = "non_saturating") -> Tensor:
    """'minimax': minimise log(1 - D(G(z))) (the game's value; its gradient vanishes while
    D wins easily); 'non_saturating': minimise -log D(G(z)) (same fixed point, strong
    early gradients). Both from logits, numerically stable."""
    if kind == "minimax":
        # log(1 - sigmoid(l)) = -softplus(l)
        return -nn.functional.softplus(fake_logits).mean()
    if kind == "non_saturating":
        ones = oxinet.ones(*fake_logits.shape, dtype=fake_logits.dtype)
        return nn.functional.binary_cross_entropy_with_logits(fake_logits, ones)
    raise ValueError(f"generator_loss: 'kind' must be 'minimax' or 'non_saturating', got {kind!r}")


@dataclass
class GANLog:
    d_losses: list = field(default_factory=list)
    g_losses: list = field(default_factory=list)


def train_gan(generator: nn.Module, discriminator: nn.Module, sample_data: Callable[[int], np.ndarray], *,
              latent: int, steps: int = 2000, batch_size: int = 64, lr: float = 2e-4, betas=(0.5, 0.999),
              kind: str = "non_saturating", d_steps: int = 1) -> GANLog:
    """Alternate ``d_steps`` discriminator updates and one generator update, ``steps`` times.

    sample_data(n) -> (n, ...) float32 real samples; the generator maps (n, latent) noise
    from oxinet's generator to samples; the discriminator maps samples to (n, 1) logits.
    Adam with ``betas=(0.5, 0.999)`` as DCGAN recommends.
    """
    g_opt = oxinet.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    d_opt = oxinet.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    log = GANLog()
    for _ in range(steps):
        for _ in range(d_steps):
            real = oxinet.tensor(sample_data(batch_size))
            with oxinet.no_grad():
                fake = generator(oxinet.randn(batch_size, latent))
            d_loss = discriminator_loss(discriminator(real), discriminator(fake))
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
        g_loss = generator_loss(discriminator(generator(oxinet.randn(batch_size, latent))), kind)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        log.d_losses.append(float(d_loss.item()))
        log.g_losses.append(float(g_loss.item()))
    return log
