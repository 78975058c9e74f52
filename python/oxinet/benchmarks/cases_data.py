"""Data-pipeline cases: loader epochs, batch augmentation, weight saving.

Peers: "numpy-loop" is the per-sample / per-image Python loop a straightforward
Dataset + collate (or a per-image augmentation) would run; "numpy" is np.savez;
"safetensors" is the safetensors package's NumPy writer.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from oxinet.benchmarks.harness import case

_N, _SHAPE = 1797, (1, 32, 32)


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n,) + shape, dtype=np.float32)


@case("DataLoader epoch 1797x1x32x32 f32 bs64 shuffle", group="data",
      bytes=2.0 * _N * int(np.prod(_SHAPE)) * 4, peers=("numpy-loop",))
def loader_epoch(lib):
    x = _images(_N, _SHAPE)
    y = np.arange(_N, dtype=np.int64) % 10
    if lib == "oxinet":
        from oxinet.data import DataLoader

        loader = DataLoader((x, y), batch_size=64, shuffle=True, seed=0)

        def run():
            for _ in loader:
                pass

        return run
    if lib == "numpy-loop":
        rng = np.random.default_rng(0)

        def run():
            order = rng.permutation(_N)
            for s in range(0, _N, 64):
                idx = order[s : s + 64]
                np.stack([x[i] for i in idx]), np.stack([y[i] for i in idx])

        return run
    return None


@case("augment crop(pad 4)+hflip N128 3x32x32 f32", group="data",
      bytes=2.0 * 128 * 3 * 32 * 32 * 4, peers=("numpy-loop",))
def crop_flip(lib):
    x = _images(128, (3, 32, 32))
    if lib == "oxinet":
        from oxinet.data import Compose, RandomCrop, RandomHorizontalFlip

        t = Compose([RandomCrop(32, padding=4, seed=0), RandomHorizontalFlip(seed=1)])
        return lambda: t(x)
    if lib == "numpy-loop":
        rng = np.random.default_rng(0)

        def run():
            out = np.empty_like(x)
            for i in range(len(x)):
                p = np.pad(x[i], ((0, 0), (4, 4), (4, 4)))
                oy, ox = rng.integers(0, 9, size=2)
                img = p[:, oy : oy + 32, ox : ox + 32]
                out[i] = img[:, :, ::-1] if rng.random() < 0.5 else img
            return out

        return run
    return None


@case("augment rotation bilinear N128 3x32x32 f32", group="data",
      bytes=2.0 * 128 * 3 * 32 * 32 * 4, peers=("numpy-loop",))
def rotation(lib):
    x = _images(128, (3, 32, 32))
    if lib == "oxinet":
        from oxinet.data import RandomRotation

        t = RandomRotation(15, seed=0)
        return lambda: t(x)
    if lib == "numpy-loop":
        from oxinet.data.transforms import rotate

        rng = np.random.default_rng(0)

        def run():  # the same index-map algorithm, one image at a time
            th = np.deg2rad(rng.uniform(-15, 15, size=len(x)))
            return np.concatenate([rotate(x[i : i + 1], th[i : i + 1]) for i in range(len(x))])

        return run
    return None


def _state_dict():
    rng = np.random.default_rng(0)
    shapes = [(64, 1, 5, 5), (64,), (128, 64, 3, 3), (128,), (1024, 2048), (1024,), (10, 1024), (10,)]
    return {f"layer{i}.p": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(shapes)}


_SD_BYTES = float(sum(a.nbytes for a in _state_dict().values()))


@case("save 8.9 MB state dict (atomic, fsync)", group="data", bytes=_SD_BYTES,
      peers=("numpy", "safetensors"))
def save_state(lib):
    sd = _state_dict()
    d = tempfile.mkdtemp(prefix="oxinet-bench-")
    if lib == "oxinet":
        from oxinet.serialization import save_safetensors

        return lambda: save_safetensors(sd, os.path.join(d, "w.safetensors"))
    if lib == "numpy":
        return lambda: np.savez(os.path.join(d, "w.npz"), **sd)
    if lib == "safetensors":
        try:
            from safetensors.numpy import save_file
        except ImportError:
            return None
        return lambda: save_file(sd, os.path.join(d, "w.safetensors"))
    return None


@case("load 8.9 MB state dict", group="data", bytes=_SD_BYTES, peers=("numpy", "safetensors"))
def load_state(lib):
    sd = _state_dict()
    d = tempfile.mkdtemp(prefix="oxinet-bench-")
    p = os.path.join(d, "w.safetensors")
    from oxinet.serialization import save_safetensors

    save_safetensors(sd, p)
    if lib == "oxinet":
        from oxinet.serialization import load_safetensors

        return lambda: load_safetensors(p)
    if lib == "numpy":
        pz = os.path.join(d, "w.npz")
        np.savez(pz, **sd)

        def run():
            with np.load(pz) as z:
                return {k: z[k] for k in z.files}

        return run
    if lib == "safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            return None
        return lambda: load_file(p)
    return None
