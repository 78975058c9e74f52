"""Autoencoder, variational autoencoder and GAN on the bundled digits and on 2-D data
(I2DL's generative models). Writes PNGs into --out: autoencoder reconstructions, VAE
samples and a latent-space traversal, GAN samples (2-D scatter and digits).

    python examples/generative.py [--out generative-out]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import oxinet
from oxinet import generative as G
from oxinet import nn
from oxinet.data import load_digits


def _save(path, image=None, scatter=None, title=""):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    if image is not None:
        ax.imshow(image, cmap="gray_r")
        ax.axis("off")
    for pts, label in scatter or []:
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, label=label)
    if scatter:
        ax.legend()
        ax.set_aspect("equal")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _batches(n, size, seed):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i:i + size] for i in range(0, n, size)]


def main(out: str = "generative-out", ae_epochs: int = 30, vae_epochs: int = 40, gan_steps: int = 3000,
         digit_gan_steps: int = 3000, seed: int = 0) -> dict:
    os.makedirs(out, exist_ok=True)
    x, y = load_digits(as_images=True)
    flat = x.reshape(len(x), -1)
    results, files = {}, []

    oxinet.manual_seed(seed)
    ae = G.ConvAutoencoder(1, image_size=8, latent=16)
    opt = oxinet.optim.Adam(ae.parameters(), lr=2e-3)
    bce = nn.BCEWithLogitsLoss()
    with oxinet.no_grad():
        results["ae_mse_untrained"] = float(np.mean((ae(oxinet.tensor(x[:16])).sigmoid().numpy() - x[:16]) ** 2))
    for epoch in range(ae_epochs):
        for idx in _batches(len(x), 64, epoch):
            xb = oxinet.tensor(x[idx])
            loss = bce(ae(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with oxinet.no_grad():
        recon = ae(oxinet.tensor(x[:16])).sigmoid().numpy()
    results["ae_mse"] = float(np.mean((recon - x[:16]) ** 2))
    files.append(_save(os.path.join(out, "ae_reconstructions.png"),
                       G.image_grid(np.concatenate([x[:8], recon[:8]]), 2, 8), title="digits (top), reconstructions"))

    oxinet.manual_seed(seed)
    vae = G.VAE(64, latent=2, hidden=256)
    opt = oxinet.optim.Adam(vae.parameters(), lr=1e-3)
    for epoch in range(vae_epochs):
        for idx in _batches(len(x), 64, epoch):
            xb = oxinet.tensor(flat[idx])
            loss, _, _ = G.elbo_loss(xb, *vae(xb))
            opt.zero_grad()
            loss.backward()
            opt.step()
    vae.eval()
    with oxinet.no_grad():
        results["vae_neg_elbo"] = float(G.elbo_loss(oxinet.tensor(flat), *vae(oxinet.tensor(flat)))[0].item())
    files.append(_save(os.path.join(out, "vae_samples.png"), G.image_grid(vae.sample(64).reshape(-1, 8, 8), 8, 8),
                       title="VAE samples"))
    files.append(_save(os.path.join(out, "vae_traversal.png"),
                       G.image_grid(vae.traverse(np.linspace(-2.5, 2.5, 10)).reshape(-1, 8, 8), 10, 10),
                       title="VAE latent traversal (z1 down, z2 across)"))

    data = G.ring_of_gaussians(2000, seed=1)
    for kind in ("non_saturating", "minimax"):
        oxinet.manual_seed(seed)
        gen = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        dis = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
                            nn.Linear(64, 1))
        with oxinet.no_grad():
            results["gan2d_energy_before"] = G.energy_distance(gen(oxinet.randn(2000, 4)).numpy(), data)
        rng = np.random.default_rng(seed)
        G.train_gan(gen, dis, lambda n: G.ring_of_gaussians(n, seed=rng), latent=4, steps=gan_steps, lr=1e-3,
                    kind=kind)
        with oxinet.no_grad():
            fake = gen(oxinet.randn(2000, 4)).numpy()
        key = "gan2d_energy_after" if kind == "non_saturating" else "gan2d_minimax_energy_after"
        results[key] = G.energy_distance(fake, data)
        files.append(_save(os.path.join(out, f"gan_2d_{kind}.png"), scatter=[(data, "data"), (fake, "generator")],
                           title=f"GAN ({kind.replace('_', '-')} loss) on a ring of 8 Gaussians"))

    if digit_gan_steps:
        oxinet.manual_seed(seed)
        gen = nn.Sequential(nn.Linear(16, 128), nn.LeakyReLU(0.2), nn.Linear(128, 64), nn.Sigmoid())
        dis = nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
        G.train_gan(gen, dis, lambda n: flat[rng.integers(0, len(flat), n)], latent=16, steps=digit_gan_steps,
                    lr=5e-4)
        with oxinet.no_grad():
            samples = gen(oxinet.randn(64, 16)).numpy()
        results["gan_digits_energy"] = G.energy_distance(samples, flat[:500])
        files.append(_save(os.path.join(out, "gan_digits.png"), G.image_grid(samples.reshape(-1, 8, 8), 8, 8),
                           title="GAN samples (digits)"))
    results["files"] = [f for f in files if f]
    for k, v in results.items():
        print(f"{k}: {v}")
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="generative-out")
    main(p.parse_args().out)
