"""``python -m oxinet demo``: the main job.

Trains a LeNet-5-style CNN on the 1797 bundled 8x8 digits (upscaled to 32x32) on the
CPU, with a progress bar, then prints the test accuracy and the training throughput and
writes the learning curves (PNG) and the weights (safetensors).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import oxinet
from oxinet import nn
from oxinet.data import Standardizer, load_digits, train_dev_test_split
from oxinet.data.transforms import Resize
from oxinet.train import Model


def lenet5(num_classes: int = 10) -> nn.Module:
    """LeNet-5 with the modern choices (ReLU, max pooling) on a 1x32x32 input."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),       # 6x28x28 -> 6x14x14
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),      # 16x10x10 -> 16x5x5
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def digits_32x32(seed: int = 0):
    """Digits upscaled to 32x32 and standardised on the training part:
    ((x_train, y_train), (x_dev, y_dev), (x_test, y_test)), stratified 80/10/10."""
    x, y = load_digits()
    x = Resize(32)(x)
    train, dev, test = train_dev_test_split(x, y, dev_size=0.1, test_size=0.1, stratify=y, seed=seed)
    scaler = Standardizer(axis=(0, 2, 3)).fit(train[0])
    return tuple((scaler.transform(part[0]).astype(np.float32), part[1]) for part in (train, dev, test))


def run(epochs: int = 12, batch_size: int = 32, lr: float = 2e-3, out: str = "oxinet-demo",
        seed: int = 0, verbose: int = 1) -> dict:
    """Train and evaluate; returns a dict with test accuracy, throughput and file paths."""
    oxinet.manual_seed(seed)
    (x_tr, y_tr), (x_dev, y_dev), (x_te, y_te) = digits_32x32(seed)
    model = Model(lenet5()).compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"], lr=lr)
    start = time.perf_counter()
    history = model.fit(x_tr, y_tr, batch_size=batch_size, epochs=epochs, validation_data=(x_dev, y_dev),
                        verbose=verbose, seed=seed)
    train_seconds = time.perf_counter() - start
    test = model.evaluate(x_te, y_te)
    os.makedirs(out, exist_ok=True)
    weights = os.path.join(out, "lenet5_digits.safetensors")
    model.save(weights, weights_only=True)
    curves = os.path.join(out, "lenet5_digits_curves.png")
    try:
        history.plot(curves, title="LeNet-5 on the 8x8 digits (upscaled to 32x32)")
    except ImportError as e:
        curves = f"not written ({e})"
    return {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "samples_per_second": len(x_tr) * len(history.epoch) / train_seconds,
        "train_seconds": train_seconds,
        "weights": weights,
        "curves": curves,
        "history": history,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m oxinet demo", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--out", default="oxinet-demo", help="folder for the weights and the PNG")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"oxinet {oxinet.__version__} ({oxinet.simd_level()}, {oxinet.get_num_threads()} threads): "
          f"LeNet-5 on the bundled digits, {args.epochs} epochs")
    r = run(args.epochs, args.batch_size, args.lr, args.out, args.seed)
    print(f"test accuracy: {r['test_accuracy'] * 100:.2f}%  (test loss {r['test_loss']:.4f})")
    print(f"training: {r['train_seconds']:.1f} s, {r['samples_per_second']:.0f} samples/s")
    print(f"weights: {r['weights']}")
    print(f"curves: {r['curves']}")
    return 0 if r["test_accuracy"] >= 0.97 else 1
