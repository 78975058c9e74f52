"""Course 3.1-3.2 application: a SIGNS-style ConvNet and a small ResNet on the bundled 8x8
digits (our stand-in for the SIGNS hand-sign images: 10 classes of small single-channel
images).

SIGNS-style CNN (the course's Keras exercise): CONV -> RELU -> MAXPOOL -> CONV -> RELU ->
MAXPOOL -> FLATTEN -> FC (softmax in the loss). ResNet: ``oxinet.models.ResNet`` with
basic blocks (identity and projection shortcuts) and a 3x3 stem for tiny images. Both are
trained with Adam through ``oxinet.Model.compile/fit``; test accuracy is reported on a
held-out stratified 25% split. The full run reaches >= 98% test accuracy with the ResNet.

Run: python examples/cnn_resnet_digits.py   (about 25 s on 2 cores: CNN ~98.7%, ResNet ~99.6% test accuracy)
"""

from __future__ import annotations

import numpy as np

import oxinet
from oxinet import nn
from oxinet.data import load_digits, train_test_split
from oxinet.models import ResNet, BasicBlock, summary


def signs_cnn(num_classes: int = 10, c1: int = 8, c2: int = 16) -> nn.Module:
    """8x8x1 -> conv3x3(c1) relu maxpool2 -> conv3x3(c2) relu maxpool2 -> FC."""
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(c2 * 2 * 2, num_classes),
    )


def digits_resnet(num_classes: int = 10, width: int = 16, blocks=(2, 2)) -> ResNet:
    return ResNet(BasicBlock, blocks, num_classes=num_classes, in_channels=1, width=width, stem="small")


def _accuracy(model, x, y):
    pred = model.predict(x).argmax(axis=1)
    return float((pred == y).mean())


def main(cnn_epochs: int = 30, resnet_epochs: int = 15, width: int = 16, blocks=(2, 2),
         n_train: int | None = None, batch_size: int = 32, seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    oxinet.manual_seed(seed)
    x, y = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, seed=seed)
    if n_train is not None:
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]
    say(f"digits: train {x_tr.shape}, test {x_te.shape}")
    out = {}

    cnn = oxinet.Model(signs_cnn()).compile("adam", "cross_entropy", metrics=["accuracy"], lr=3e-3)
    h = cnn.fit(x_tr, y_tr, batch_size=batch_size, epochs=cnn_epochs, verbose=0, seed=seed)
    out["cnn_loss"] = (h.history["loss"][0], h.history["loss"][-1])
    out["cnn_test_accuracy"] = _accuracy(cnn, x_te, y_te)
    say(f"SIGNS-style CNN: loss {out['cnn_loss'][0]:.3f} -> {out['cnn_loss'][1]:.3f}, "
        f"test accuracy {out['cnn_test_accuracy']:.4f}")

    net = digits_resnet(width=width, blocks=blocks)
    if verbose:
        summary(net, (1, 8, 8), print_fn=print)
    res = oxinet.Model(net).compile("adam", "cross_entropy", metrics=["accuracy"], lr=2e-3)
    sched = oxinet.train.LearningRateScheduler(lambda e, lr: 2e-3 * 0.5 * (1 + np.cos(np.pi * e / resnet_epochs)))
    h = res.fit(x_tr, y_tr, batch_size=batch_size, epochs=resnet_epochs, verbose=0, seed=seed, callbacks=[sched])
    out["resnet_loss"] = (h.history["loss"][0], h.history["loss"][-1])
    out["resnet_test_accuracy"] = _accuracy(res, x_te, y_te)
    say(f"ResNet ({sum(blocks)} basic blocks, width {width}): loss {out['resnet_loss'][0]:.3f} -> "
        f"{out['resnet_loss'][1]:.3f}, test accuracy {out['resnet_test_accuracy']:.4f}")
    return out


if __name__ == "__main__":
    main()
