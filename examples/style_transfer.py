"""Course 3.4 application: neural style transfer (F46).

J(G) = alpha J_content(C, G) + beta J_style(S, G), minimised over the pixels of G with Adam.

* Content cost at one layer: J_content = 1 / (4 n_H n_W n_C) * sum (a(C) - a(G))^2 (the
  course exercise's normalisation of the 1/2 ||a(C) - a(G)||^2 of the lecture).
* Style: Gram matrix G = A A^T of the unrolled activations A (n_C, n_H n_W); per layer
  J_style[l] = 1 / (2 n_H n_W n_C)^2 * sum (G(S) - G(G))^2, summed over several layers with
  weights lambda[l].
* Feature extractor: by default a small VGG-style CNN that the example first trains itself
  (naming the shape in one-object ``make_shapes`` images, so its filters respond to edges,
  colours and shapes); with ``vgg_weights=path/to/vgg16.safetensors`` (torchvision's
  parameter names, e.g. exported with ``safetensors.torch.save_file(vgg16().state_dict())``)
  ``oxinet.models.vgg16`` is used with the course's layers (content block4_conv2, style
  block1..5_conv1) on ImageNet-normalised inputs.

Content image: a shapes scene; style image: a generated colourful stripe/checker texture.
Writes content | style | generated as a PNG.

Run: python examples/style_transfer.py   (about 25 s on 2 cores)
"""

from __future__ import annotations

import os

import numpy as np

import oxinet
from oxinet import nn
from oxinet.data import make_shapes
from oxinet.vision.draw import save_png, to_uint8_image, upscale


class SmallVGG(nn.Module):
    """conv-BN-relu blocks; ``extract`` returns named activations (block1_conv1 ...). In eval
    mode BatchNorm is a fixed per-channel affine map, so the features are plain functions
    of the pixels."""

    def __init__(self, widths=(16, 32, 64), num_outputs=3):
        super().__init__()
        layers, names, c = [], {}, 3
        for b, w in enumerate(widths, 1):
            for k in (1, 2):
                layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
                names[f"block{b}_conv{k}"] = len(layers) - 1
                c = w
            layers.append(nn.AvgPool2d(2, 2))   # average pooling: smoother images (Gatys et al.)
        self.features = nn.Sequential(*layers)
        self.names = names
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c, num_outputs))

    def forward(self, x):
        return self.head(self.features(x))

    def extract(self, x, wanted):
        idx = {self.names[n]: n for n in wanted}
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in idx:
                out[idx[i]] = x
                if len(out) == len(idx):
                    break
        return out


def train_extractor(n_images=600, epochs=6, seed=0, say=print):
    """Train SmallVGG to name the single shape in ``make_shapes`` images (3 classes)."""
    data = make_shapes(n_images, image_size=32, max_objects=1, min_objects=1, seed=seed + 7)
    y = np.array([lab[0] for lab in data.labels], np.int64)
    net = SmallVGG()
    opt = oxinet.optim.Adam(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(n_images)
        for i in range(0, n_images, 32):
            idx = order[i:i + 32]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(oxinet.tensor(data.images[idx])), y[idx])
            loss.backward()
            opt.step()
    net.eval()
    with oxinet.no_grad():
        acc = float((net(oxinet.tensor(data.images)).numpy().argmax(1) == y).mean())
    say(f"feature extractor trained: shape-classification accuracy on its training images {acc:.3f}")
    for p in net.parameters():
        p.requires_grad_(False)
    return net, acc


def style_texture(size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = (((xx + yy) // 4) % 2).astype(np.float32)
    checks = (((xx // 8) + (yy // 8)) % 2).astype(np.float32)
    c1, c2, c3 = rng.uniform(0, 1, (3, 3))
    img = (stripes[None] * c1[:, None, None] + (1 - stripes[None]) * c2[:, None, None]) * (0.6 + 0.4 * checks[None])
    img = img + 0.3 * checks[None] * c3[:, None, None]
    return np.clip(img, 0, 1).astype(np.float32)


def gram_matrix(a):
    """a: (1, n_C, n_H, n_W) -> (n_C, n_C) = A A^T with A (n_C, n_H n_W)."""
    A = a.reshape(a.shape[1], -1)
    return A @ A.T


def content_cost(a_c, a_g):
    _, c, h, w = a_g.shape
    return ((a_c - a_g) ** 2).sum() / (4.0 * h * w * c)


def layer_style_cost(a_s, a_g):
    _, c, h, w = a_g.shape
    return ((gram_matrix(a_s) - gram_matrix(a_g)) ** 2).sum() / (2.0 * h * w * c) ** 2


def style_cost(feats_s, feats_g, weights):
    return sum(lam * layer_style_cost(feats_s[n], feats_g[n]) for n, lam in weights.items())


def load_vgg16(path, say=print):
    from oxinet.models import vgg16
    net = vgg16(num_classes=1000, input_size=224)
    state = oxinet.serialization.load_safetensors(path)
    missing = net.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")}, strict=False)
    say(f"loaded VGG-16 features from {path} ({len(missing.missing_keys)} keys left at initialisation)")
    for p in net.parameters():
        p.requires_grad_(False)
    net.eval()
    return net


def main(steps: int = 300, lr: float = 0.01, alpha: float = 10.0, beta: float = 40.0, extractor_epochs: int = 6,
         n_extractor_images: int = 600, vgg_weights: str | None = None, image_size: int = 32, out_dir: str = ".",
         seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    oxinet.manual_seed(seed)
    if vgg_weights:
        net = load_vgg16(vgg_weights, say)
        content_layer = "block4_conv2"
        style_weights = {f"block{b}_conv1": 0.2 for b in range(1, 6)}
        mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
        std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    else:
        net, _ = train_extractor(n_extractor_images, extractor_epochs, seed, say)
        content_layer = "block3_conv1"
        style_weights = {"block1_conv1": 0.3, "block2_conv1": 0.3, "block3_conv1": 0.4}
        mean, std = np.zeros((3, 1, 1), np.float32), np.ones((3, 1, 1), np.float32)
    layers = sorted(set(style_weights) | {content_layer})
    norm = (lambda t: (t - oxinet.tensor(mean)) / oxinet.tensor(std))
    content = make_shapes(1, image_size=image_size, max_objects=3, min_objects=2, seed=seed + 11).images[:1]
    style = style_texture(image_size, seed)[None]
    with oxinet.no_grad():
        f_c = net.extract(norm(oxinet.tensor(content)), [content_layer])
        f_s = net.extract(norm(oxinet.tensor(style)), list(style_weights))
    rng = np.random.default_rng(seed)
    g0 = np.clip(content + rng.uniform(-0.2, 0.2, content.shape).astype(np.float32), 0, 1)
    G = oxinet.tensor(g0, requires_grad=True)
    opt = oxinet.optim.Adam([G], lr=lr)
    history = []
    for step in range(steps):
        opt.zero_grad()
        f_g = net.extract(norm(G), layers)
        jc = content_cost(f_c[content_layer], f_g[content_layer])
        js = style_cost(f_s, f_g, style_weights)
        j = alpha * jc + beta * js
        j.backward()
        opt.step()
        with oxinet.no_grad():
            G.clamp_(0.0, 1.0)
        history.append((float(j.item()), float(jc.item()), float(js.item())))
        if verbose and (step % 50 == 0 or step == steps - 1):
            say(f"  step {step}: J = {history[-1][0]:.4f} (content {history[-1][1]:.4f}, style {history[-1][2]:.5f})")
    out = {"history": history, "initial_cost": history[0][0], "final_cost": history[-1][0],
           "initial_style": history[0][2], "final_style": history[-1][2]}
    gen = G.numpy()[0]
    panel = np.concatenate([to_uint8_image(content[0]), to_uint8_image(style[0]), to_uint8_image(gen)], 1)
    out["png"] = save_png(os.path.join(out_dir, "style_transfer.png"), upscale(panel, 4))
    out["generated"] = gen
    say(f"J: {out['initial_cost']:.4f} -> {out['final_cost']:.4f}; style cost {out['initial_style']:.5f} -> "
        f"{out['final_style']:.5f}; images written to {out['png']}")
    return out


if __name__ == "__main__":
    main()
