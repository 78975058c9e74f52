"""The record of a training run: one value per epoch for every logged quantity."""

from __future__ import annotations

import math

from oxinet.train.callbacks import Callback


class History(Callback):
    """``history.history["loss"]`` etc.: per-epoch values, as Keras' History.

    ``epoch`` lists the epoch numbers (0-based) the values belong to.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def plot(self, path, title: str | None = None) -> None:
        """Write a PNG with one panel per quantity (loss, each metric), training and
        validation curves together. Needs matplotlib (``pip install "oxinet[plot]"``)."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib, an optional extra: pip install 'oxinet[plot]' "
                "(or pip install matplotlib)"
            ) from None
        if not self.history:
            raise ValueError("History.plot: nothing recorded yet (call fit first)")
        names = [k for k in self.history if not k.startswith("val_") and k != "lr"]
        names += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in names]
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            for key, style in ((name, "-o"), (f"val_{name}", "--s")):
                values = self.history.get(key)
                if values:
                    ax.plot(epochs[-len(values):], values, style, markersize=3, label=key)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def best(self, monitor: str = "val_loss", mode: str = "min") -> tuple[int, float]:
        """(epoch, value) of the best recorded value of ``monitor``."""
        values = self.history.get(monitor)
        if not values:
            raise KeyError(f"History.best: {monitor!r} was not recorded; have {sorted(self.history)}")
        key = (lambda i: values[i]) if mode == "min" else (lambda i: -values[i])
        finite = [i for i in range(len(values)) if not math.isnan(values[i])]
        i = min(finite, key=key)
        return self.epoch[i], values[i]
