"""Generative and representation models of I2DL: autoencoders, the variational
autoencoder and generative adversarial networks, plus distances between samples to check
that a generator moves towards the data."""

from oxinet.generative.autoencoder import ConvAutoencoder, DenseAutoencoder
from oxinet.generative.gan import GANLog, discriminator_loss, generator_loss, train_gan
from oxinet.generative.samples import energy_distance, image_grid, ring_of_gaussians
from oxinet.generative.vae import VAE, elbo_loss, gaussian_kl

__all__ = [
    "ConvAutoencoder", "DenseAutoencoder", "GANLog", "discriminator_loss", "generator_loss", "train_gan",
    "energy_distance", "image_grid", "ring_of_gaussians", "VAE", "elbo_loss", "gaussian_kl",
]
