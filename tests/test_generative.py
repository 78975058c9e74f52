"""oxinet.generative: autoencoders, VAE (KL, ELBO), GAN losses and training, distances."""

import numpy as np
import pytest

import oxinet
from oxinet import generative as G
from oxinet import nn
from oxinet.data import load_digits


def t64(a, grad=True):
    return oxinet.tensor(np.asarray(a, np.float64), dtype=oxinet.float64, requires_grad=grad)


def test_gaussian_kl_matches_closed_form_and_is_zero_at_the_prior():
    rng = np.random.default_rng(0)
    mu, lv = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    ref = 0.5 * np.sum(np.exp(lv) + mu ** 2 - 1 - lv, axis=1)
    np.testing.assert_allclose(G.gaussian_kl(t64(mu), t64(lv)).numpy(), ref, rtol=1e-12)
    assert np.all(G.gaussian_kl(t64(np.zeros((2, 3))), t64(np.zeros((2, 3)))).numpy() == 0)


def test_elbo_gradients():
    rng = np.random.default_rng(1)
    x = t64(rng.random((4, 6)), grad=False)
    args = [t64(rng.standard_normal((4, 6))), t64(rng.standard_normal((4, 2))), t64(rng.standard_normal((4, 2)))]
    assert oxinet.gradcheck(lambda lg, mu, lv: G.elbo_loss(x, lg, mu, lv, beta=0.7)[0], args)


def test_vae_module_gradcheck_in_eval_mode_and_training_improves_elbo():
    oxinet.manual_seed(0)
    vae = G.VAE(5, latent=2, hidden=7).to(oxinet.float64).eval()
    x = t64(np.random.default_rng(2).random((3, 5)))
    assert oxinet.gradcheck(lambda xx: G.elbo_loss(xx, *vae(xx))[0], [x], params=vae.named_parameters())

    oxinet.manual_seed(0)
    data, _ = load_digits(as_images=False)
    vae = G.VAE(64, latent=2, hidden=64)
    opt = oxinet.optim.Adam(vae.parameters(), lr=3e-3)
    xt = oxinet.tensor(data)

    def elbo():
        vae.eval()
        with oxinet.no_grad():
            return G.elbo_loss(xt, *vae(xt))[0].item()

    start = elbo()
    vae.train()
    for epoch in range(6):
        for i in range(0, len(data), 64):
            xb = oxinet.tensor(data[i:i + 64])
            loss = G.elbo_loss(xb, *vae(xb))[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
        vae.train()
    assert elbo() < 0.8 * start
    s = vae.sample(5)
    assert s.shape == (5, 64) and s.min() >= 0 and s.max() <= 1
    assert vae.traverse(np.linspace(-2, 2, 4)).shape == (16, 64)


def test_dense_autoencoder_features_are_useful():
    oxinet.manual_seed(0)
    x, y = load_digits(as_images=False)
    ae = G.DenseAutoencoder(64, latent=12, hidden=(64,))
    opt = oxinet.optim.Adam(ae.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    xt = oxinet.tensor(x)
    first = loss_fn(ae(xt), xt).item()
    for epoch in range(15):
        for i in range(0, len(x), 64):
            xb = oxinet.tensor(x[i:i + 64])
            loss = loss_fn(ae(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert loss_fn(ae(xt), xt).item() < first - 0.1
    with oxinet.no_grad():
        feats = ae.encode(xt).numpy()
    # a linear classifier on the 12-number codes (fit on 2/3, scored on the rest)
    head = oxinet.Model(nn.Linear(12, 10)).compile("adam", "cross_entropy", ["accuracy"], lr=0.05)
    head.fit(feats[:1200], y[:1200], epochs=30, batch_size=64, verbose=0, seed=0)
    assert head.evaluate(feats[1200:], y[1200:])["accuracy"] >= 0.8


def test_conv_autoencoder_shapes_and_gradients():
    oxinet.manual_seed(0)
    ae = G.ConvAutoencoder(1, image_size=8, latent=3, width=2).to(oxinet.float64)
    x = t64(np.random.default_rng(3).random((2, 1, 8, 8)))
    assert ae(x).shape == (2, 1, 8, 8) and ae.encode(x).shape == (2, 3)
    assert oxinet.gradcheck(lambda xx: ae(xx), [x], params=ae.named_parameters())
    with pytest.raises(ValueError, match="divisible by 4"):
        G.ConvAutoencoder(1, image_size=10)


def test_gan_losses_match_formulas_and_saturation():
    rng = np.random.default_rng(4)
    real, fake = rng.standard_normal((6, 1)), rng.standard_normal((6, 1))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    d_ref = -np.mean(np.log(sig(real))) - np.mean(np.log(1 - sig(fake)))
    assert np.isclose(G.discriminator_loss(t64(real), t64(fake)).item(), d_ref)
    assert np.isclose(G.generator_loss(t64(fake), "minimax").item(), np.mean(np.log(1 - sig(fake))))
    assert np.isclose(G.generator_loss(t64(fake), "non_saturating").item(), -np.mean(np.log(sig(fake))))
    # When D confidently rejects the fakes (logit -8), the minimax gradient vanishes; the
    # non-saturating one does not (the course's reason to prefer it).
    grads = {}
    for kind in ("minimax", "non_saturating"):
        l = t64(np.full((4, 1), -8.0))
        G.generator_loss(l, kind).backward()
        grads[kind] = np.abs(l.grad.numpy()).mean()
    assert grads["minimax"] < 1e-3 < 0.2 < grads["non_saturating"]
    with pytest.raises(ValueError, match="'kind'"):
        G.generator_loss(t64(fake), "wgan")


def test_gan_moves_towards_the_data():
    oxinet.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    dis = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    data = G.ring_of_gaussians(800, seed=1)
    with oxinet.no_grad():
        before = G.energy_distance(gen(oxinet.randn(800, 4)).numpy(), data)
    rng = np.random.default_rng(0)
    log = G.train_gan(gen, dis, lambda n: G.ring_of_gaussians(n, seed=rng), latent=4, steps=700, lr=1e-3)
    with oxinet.no_grad():
        after = G.energy_distance(gen(oxinet.randn(800, 4)).numpy(), data)
    assert len(log.d_losses) == 700
    assert after < 0.2 * before, (before, after)


def test_energy_distance_and_image_grid():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((400, 2))
    b = rng.standard_normal((400, 2))
    assert abs(G.energy_distance(a, b)) < 0.05
    assert G.energy_distance(a, b + 2.0) > 1.0
    grid = G.image_grid(np.zeros((5, 1, 8, 8)), rows=2, cols=3)
    assert grid.shape == (17, 26)
