"""The dependency-free PNG writers of oxinet.text.png (checked by decoding the file back)."""

import struct
import zlib

import numpy as np
import pytest

from oxinet.text.png import attention_heatmap, heatmap_png, scatter_png, write_png


def _read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        if tag == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    w, h = size
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_write_png_roundtrip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    write_png(tmp_path / "a.png", img)
    assert (_read_png(tmp_path / "a.png") == img).all()
    with pytest.raises(ValueError, match="'rgb'"):
        write_png(tmp_path / "b.png", np.zeros((3, 3)))


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
