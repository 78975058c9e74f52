"""Heatmaps and scatter plots of sequence-model results as PNG files, written with the
dependency-free encoder of :mod:`oxinet.vision.draw` (matplotlib draws labelled figures
when it is installed, never required)."""

from __future__ import annotations

import numpy as np

from oxinet.vision.draw import save_png

__all__ = ["heatmap_png", "scatter_png", "attention_heatmap"]


def heatmap_png(path, matrix, cell: int = 16) -> None:
    """A matrix in [0, 1] (e.g. attention weights, rows = output steps) as a white-to-blue
    heatmap, each entry a ``cell`` x ``cell`` square."""
    m = np.clip(np.asarray(matrix, np.float64), 0, 1)
    if m.ndim != 2:
        raise ValueError(f"heatmap_png: 'matrix' must be 2-D, got shape {m.shape}")
    v = np.kron(m, np.ones((cell, cell)))
    rgb = np.stack([255 * (1 - v), 255 * (1 - 0.8 * v), 255 * np.ones_like(v) - 100 * v], -1)
    save_png(path, rgb.round().astype(np.uint8))


def scatter_png(coords, path, size: int = 400) -> None:
    """Dots at the 2-D ``coords`` on a white square."""
    c = np.asarray(coords, np.float64)[:, :2]
    img = np.full((size, size, 3), 255, np.uint8)
    lo, hi = c.min(0), c.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1)
    p = ((c - lo) / span * (size - 11) + 5).astype(int)
    for x, y in p:
        img[size - 1 - y - 2: size - y + 1, x - 2: x + 3] = (30, 60, 200)
    save_png(path, img)


def attention_heatmap(path, weights, x_labels, y_labels, title: str = "attention weights") -> None:
    """Save attention weights ``(len(y_labels), len(x_labels))`` (rows: output steps) as a
    PNG: a labelled matplotlib figure when matplotlib is installed, else a plain heatmap."""
    w = np.asarray(weights, np.float64)
    if w.shape != (len(y_labels), len(x_labels)):
        raise ValueError(f"attention_heatmap: 'weights' has shape {w.shape} but there are {len(y_labels)} "
                         f"y labels and {len(x_labels)} x labels")
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        heatmap_png(path, w)
        return
    fig, ax = plt.subplots(figsize=(0.3 * len(x_labels) + 1.5, 0.3 * len(y_labels) + 1.2))
    ax.imshow(w, cmap="Blues", vmin=0, vmax=max(float(w.max()), 1e-12), aspect="auto")
    ax.set_xticks(range(len(x_labels)), [repr(c)[1:-1] if c != " " else "␣" for c in x_labels])
    ax.set_yticks(range(len(y_labels)), list(y_labels))
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
