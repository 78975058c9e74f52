"""oxinet.text.png heatmaps and scatter plots (checked by decoding the files back)."""

import numpy as np
import pytest

from oxinet.text.png import attention_heatmap, heatmap_png, scatter_png
from oxinet.vision.draw import decode_png


def _read_png(path):
    return decode_png(open(path, "rb").read())


def test_heatmap_and_scatter(tmp_path):
    m = np.array([[0.0, 1.0], [0.5, 0.0]])
    heatmap_png(tmp_path / "h.png", m, cell=3)
    img = _read_png(tmp_path / "h.png")
    assert img.shape == (6, 6, 3)
    assert (img[0, 0] == 255).all() and img[0, 3, 0] == 0  # zero is white, one is dark
    scatter_png(np.array([[0.0, 0.0], [1.0, 1.0]]), tmp_path / "s.png", size=50)
    assert _read_png(tmp_path / "s.png").shape == (50, 50, 3)


def test_attention_heatmap(tmp_path):
    attention_heatmap(tmp_path / "att.png", np.eye(3), list("abc"), list("xyz"))
    assert (tmp_path / "att.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="'weights'"):
        attention_heatmap(tmp_path / "x.png", np.eye(3), list("ab"), list("xyz"))


def test_fallbacks_without_matplotlib(tmp_path, monkeypatch):
    import sys

    from oxinet.text import plot_embeddings

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    attention_heatmap(tmp_path / "att.png", np.eye(3) * 0.5, list("abc"), list("xyz"))
    img = _read_png(tmp_path / "att.png")
    assert img.shape[:2] == (48, 48)
    coords = plot_embeddings(np.random.default_rng(0).normal(size=(6, 4)), list("abcdef"), tmp_path / "e.png")
    assert coords.shape == (6, 2) and _read_png(tmp_path / "e.png").shape[:2] == (400, 400)
