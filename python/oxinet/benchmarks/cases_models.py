"""Model-zoo training cases (group "models"): one training step (forward, cross-entropy,
backward, SGD-momentum update) of a whole network on a batch of 64 float32 images.

One call = one step on 64 samples, so samples/s = 64 / (seconds per call); an epoch of
n samples costs n / 64 calls. ``flops`` is the forward convolution/linear multiply-add
count x 2 (FLOPs) x 3 (forward + the two backward products), counted once at build time
from the layer shapes, so the table's GFLOP/s is comparable across models.

Peer "torch": the same architecture from torchvision when PyTorch is installed (it is not
on the project's build machine, where the row reads n/a).
"""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

BATCH = 64


def _train_step(model, x, t):
    import oxinet
    from oxinet import nn

    opt = oxinet.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt = oxinet.tensor(x)

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xt), t)
        loss.backward()
        opt.step()
        return loss

    return step


def _torch_step(build, x, t):
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError:
        return None
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), tt)
        loss.backward()
        opt.step()
        return loss

    return step


def forward_flops(model, input_shape) -> float:
    """2 x multiply-adds of Conv2d/Linear layers in one forward pass of a batch."""
    import oxinet
    from oxinet import nn

    total = [0]

    def hook(m, args, out):
        if isinstance(m, nn.Linear):
            total[0] += 2 * int(np.prod(out.shape)) * m.in_features
        else:
            w = m.weight.shape
            total[0] += 2 * int(np.prod(out.shape)) * int(np.prod(w[1:]))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, getattr(nn, "Conv2d", nn.Linear)))]
    model.eval()
    with oxinet.no_grad():
        model(oxinet.zeros(input_shape))
    model.train()
    for h in handles:
        h.remove()
    return float(total[0])


def _data(size, classes=10):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, size, size)).astype(np.float32)
    t = rng.integers(0, classes, BATCH).astype(np.int64)
    return x, t


# FLOPs of a training step = 3 x forward_flops() of the same model and batch (measured once:
# ResNet-18 at 64x3x32x32 -> 10: 4.738e9; MobileNet v2 at 64x3x64x64 -> 10: 3.131e9)
RESNET18_32_FLOPS = 3 * 4_738_121_728
MOBILENETV2_64_FLOPS = 3 * 3_131_047_936


@case("resnet18 train step N64 3x32x32 (imagenet stem) -> 10", group="models", flops=RESNET18_32_FLOPS, peers=("torch",))
def resnet18_step(lib):
    x, t = _data(32)
    if lib == "oxinet":
        import oxinet
        from oxinet.models import resnet18
        oxinet.manual_seed(0)
        return _train_step(resnet18(num_classes=10), x, t)
    if lib == "torch":
        return _torch_step(lambda: __import__("torchvision").models.resnet18(num_classes=10), x, t)
    return None


@case("mobilenet_v2 train step N64 3x64x64 -> 10", group="models", flops=MOBILENETV2_64_FLOPS, peers=("torch",))
def mobilenet_v2_step(lib):
    x, t = _data(64)
    if lib == "oxinet":
        import oxinet
        from oxinet.models import mobilenet_v2
        oxinet.manual_seed(0)
        return _train_step(mobilenet_v2(num_classes=10), x, t)
    if lib == "torch":
        return _torch_step(lambda: __import__("torchvision").models.mobilenet_v2(num_classes=10), x, t)
    return None
