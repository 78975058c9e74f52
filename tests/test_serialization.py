"""save/load (safetensors written by hand in NumPy, npz), atomic writes, checkpoints and the
state-dict mismatch report."""

import json
import math
import os
import struct

import numpy as np
import pytest

import oxinet
from oxinet import serialization as S


def _state():
    rng = np.random.default_rng(0)
    return {
        "fc1.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "fc1.bias": rng.standard_normal(4).astype(np.float64),
        "mask": rng.random((2, 5)) > 0.5,
        "steps": np.arange(7, dtype=np.int64) * (2**40),
        "bn.num_batches_tracked": np.array(12, dtype=np.int64),
        "empty": np.zeros((0, 3), np.float32),
        "i8": np.array([-3, 4], np.int8),
        "u16": np.array([65535, 1], np.uint16),
        "f16": np.array([1.5, -2.25], np.float16),
    }


def _assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_round_trip_exact(tmp_path, suffix):
    st = _state()
    st["fc1.weight"][0, 0] = np.nan
    st["fc1.bias"][1] = -np.inf
    path = tmp_path / f"w{suffix}"
    oxinet.save(st, path)
    back = oxinet.load(path)
    _assert_same(st, back)
    assert back["fc1.weight"].flags.writeable and back["fc1.weight"].flags.c_contiguous


def test_safetensors_layout_by_hand(tmp_path):
    """Parse the file with the format's definition: u64 LE header size, JSON, raw LE data."""
    st = {"b": np.array([True, False, True]), "w": np.arange(6, dtype=np.float32).reshape(2, 3),
          "d": np.array([1.0, 2.0])}
    path = tmp_path / "m.safetensors"
    S.save_safetensors(st, path, metadata={"author": "test"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"] == {"author": "test"}
    assert list(header)[1:] == ["b", "w", "d"]  # caller's order kept in the header
    assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [2, 3]
    assert header["b"]["dtype"] == "BOOL" and header["d"]["dtype"] == "F64"
    data = raw[8 + n :]
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no holes
    for k in ("b", "w", "d"):
        b, e = header[k]["data_offsets"]
        itemsize = st[k].dtype.itemsize
        assert (8 + n + b) % itemsize == 0  # every tensor is aligned in the file
        np.testing.assert_array_equal(np.frombuffer(data[b:e], st[k].dtype.newbyteorder("<")).reshape(st[k].shape), st[k])
    state, meta = S.load_safetensors(path, return_metadata=True)
    assert meta == {"author": "test"} and list(state) == ["b", "w", "d"]


def _handmade(entries, blobs, pad=b""):
    header = json.dumps(entries).encode() + pad
    return struct.pack("<Q", len(header)) + header + b"".join(blobs)


def test_reads_handmade_file_with_bf16_and_big_endian_input(tmp_path):
    f32 = np.array([1.0, -2.5, 3.140625], np.float32)
    bf16 = (f32.view(np.uint32) >> 16).astype("<u2")  # exactly representable in bf16
    i32 = np.array([[1, -2]], "<i4")
    blob = _handmade(
        {"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
         "y": {"dtype": "I32", "shape": [1, 2], "data_offsets": [6, 14]}},
        [bf16.tobytes(), i32.tobytes()], pad=b"  ",
    )
    p = tmp_path / "h.safetensors"
    p.write_bytes(blob)
    got = oxinet.load(p)
    np.testing.assert_array_equal(got["x"], f32)
    assert got["x"].dtype == np.float32
    np.testing.assert_array_equal(got["y"], i32)
    # big-endian and non-contiguous inputs are written as little-endian C order
    be = np.arange(6, dtype=">f8").reshape(2, 3).T
    oxinet.save({"be": be}, tmp_path / "be.safetensors")
    back = oxinet.load(tmp_path / "be.safetensors")["be"]
    np.testing.assert_array_equal(back, be)
    assert back.dtype == np.float64 and back.dtype.isnative


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b[:4], "too short"),
        (lambda b: struct.pack("<Q", 10**6) + b[8:], "header length"),
        (lambda b: b[:-1], "data_offsets|data section"),
        (lambda b: b + b"\0" * 8, "data section"),
        (lambda b: b[:8] + b"[" + b[9:], "malformed"),
    ],
)
def test_corrupt_safetensors_errors(tmp_path, mutate, match):
    p = tmp_path / "c.safetensors"
    S.save_safetensors({"a": np.arange(4, dtype=np.float32)}, p)
    p.write_bytes(mutate(p.read_bytes()))
    with pytest.raises(ValueError, match=match):
        S.load_safetensors(p)


def test_safetensors_package_interop(tmp_path):
    stnp = pytest.importorskip("safetensors.numpy")
    st = _state()
    p1 = tmp_path / "ours.safetensors"
    oxinet.save(st, p1)
    theirs = stnp.load_file(str(p1))
    assert set(theirs) == set(st)
    for k in st:
        np.testing.assert_array_equal(theirs[k], st[k])
        assert theirs[k].dtype == st[k].dtype
    p2 = tmp_path / "theirs.safetensors"
    stnp.save_file(st, str(p2), metadata={"k": "v"})
    ours, meta = S.load_safetensors(p2, return_metadata=True)
    assert meta == {"k": "v"}
    _assert_same(st, {k: ours[k] for k in st})


def test_save_accepts_objects_with_state_dict_and_scalars(tmp_path):
    class Model:
        def state_dict(self):
            return {"w": np.ones((2, 2), np.float32), "n": 3, "lr": 0.5}

    oxinet.save(Model(), tmp_path / "m.npz")
    back = oxinet.load(tmp_path / "m.npz")
    assert back["n"].dtype == np.int64 and back["n"] == 3 and back["lr"] == 0.5
    with pytest.raises(TypeError, match="'w'.*not an array"):
        oxinet.save({"w": object()}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="dtype complex128"):
        oxinet.save({"c": np.zeros(2, complex)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="format"):
        oxinet.save({"w": np.zeros(2)}, tmp_path / "x.bin")
    oxinet.save({"w": np.zeros(2)}, tmp_path / "x.bin", format="npz")
    assert oxinet.load(tmp_path / "x.bin", format="npz")["w"].shape == (2,)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_crash_between_write_and_rename_keeps_previous_file(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"w{suffix}"
    old = {"w": np.zeros(3, np.float32)}
    oxinet.save(old, path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated power loss before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        oxinet.save({"w": np.ones(3, np.float32), "v": np.ones(100)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(oxinet.load(path)["w"], old["w"])
    assert os.listdir(tmp_path) == [path.name]  # the temporary file was cleaned up


def test_crash_while_writing_keeps_previous_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with S.atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["w.bin"]
    with S.atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"


def test_temp_file_is_in_the_target_directory(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(os.path.abspath(src)), os.path.dirname(os.path.abspath(dst))))
        assert os.path.getsize(src) > 0  # fully written before the rename
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    sub = tmp_path / "d"
    sub.mkdir()
    oxinet.save({"w": np.ones(4)}, sub / "w.safetensors")
    assert seen == [(str(sub), str(sub))]


def test_checkpoint_round_trip_exact(tmp_path):
    model = _state()
    opt = {
        "state": {0: {"step": 10, "exp_avg": np.full((4, 3), 0.1, np.float32), "exp_avg_sq": np.full((4, 3), 1e-3, np.float32)},
                  1: {"step": 10, "momentum_buffer": None}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                          "amsgrad": False, "params": [0, 1], "name": "all"}],
    }
    extra = {
        "scheduler_state": {"last_epoch": 4, "base_lrs": [0.1], "gamma": np.float32(0.5)},
        "best": {"val_loss": float("inf"), "nan": float("nan"), "big": 2**70},
        "rng_state": np.random.default_rng(3).bit_generator.state,
        "history": {"loss": [1.0, 0.5, 0.25]},
    }
    path = tmp_path / "ckpt.safetensors"
    oxinet.save_checkpoint(path, model_state=model, optimizer_state=opt, epoch=5, **extra)
    ck = oxinet.load_checkpoint(path)
    assert ck["epoch"] == 5 and type(ck["epoch"]) is int
    _assert_same(model, ck["model"])
    o = ck["optimizer"]
    assert set(o["state"]) == {0, 1}  # int keys stay ints
    assert o["state"][0]["step"] == 10 and o["state"][1]["momentum_buffer"] is None
    assert o["state"][0]["exp_avg"].tobytes() == opt["state"][0]["exp_avg"].tobytes()
    assert o["param_groups"] == [{k: v for k, v in opt["param_groups"][0].items()}]
    assert isinstance(o["param_groups"][0]["betas"], tuple)
    assert o["param_groups"][0]["lr"] == 1e-3 and o["param_groups"][0]["amsgrad"] is False
    s = ck["scheduler_state"]
    assert type(s["gamma"]) is np.float32 and s["gamma"] == np.float32(0.5)
    assert ck["best"]["val_loss"] == math.inf and math.isnan(ck["best"]["nan"]) and ck["best"]["big"] == 2**70
    g = np.random.default_rng(0)
    g.bit_generator.state = ck["rng_state"]
    assert g.random() == np.random.default_rng(3).random()  # resumes the same random stream
    assert ck["history"] == {"loss": [1.0, 0.5, 0.25]}
    # weights are ordinary tensors too: other tools can read them
    plain = oxinet.load(path)
    np.testing.assert_array_equal(plain["model/fc1.weight"], model["fc1.weight"])


def test_checkpoint_errors(tmp_path):
    oxinet.save({"w": np.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="not an oxinet checkpoint"):
        oxinet.load_checkpoint(tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match="cannot store set"):
        oxinet.save_checkpoint(tmp_path / "c.safetensors", model_state={"w": np.zeros(2)}, extra={1, 2})


def test_mismatch_report_lists_everything():
    expected = {"fc1.weight": np.zeros((64, 16)), "fc1.bias": np.zeros(64), "fc2.weight": np.zeros((10, 64)),
                "fc2.bias": np.zeros(10)}
    state = {"fc1.weight": np.zeros((64, 32)), "fc1.bias": np.zeros(64), "fc2.bias": np.zeros(11),
             "fc3.weight": np.zeros((5, 5)), "extra": np.zeros(1)}
    with pytest.raises(S.StateDictMismatchError) as ei:
        S.load_into(state, expected)
    msg = str(ei.value)
    assert isinstance(ei.value, ValueError)
    assert "1 missing, 2 unexpected, 2 with a different shape" in msg
    assert "missing key 'fc2.weight': expected shape (10, 64)" in msg
    assert "unexpected key 'fc3.weight': shape (5, 5)" in msg
    assert "unexpected key 'extra': shape (1,)" in msg
    assert "shape mismatch for 'fc1.weight': loaded (64, 32) but expected (64, 16)" in msg
    assert "shape mismatch for 'fc2.bias': loaded (11,) but expected (10,)" in msg
    assert ei.value.missing == ["fc2.weight"] and ei.value.unexpected == ["fc3.weight", "extra"]
    assert len(ei.value.shape_mismatches) == 2
    # nothing was copied
    assert not expected["fc1.bias"].any()
    # non-strict: missing/unexpected tolerated, shape mismatches still fatal
    with pytest.raises(S.StateDictMismatchError, match="fc1.weight") as ei2:
        S.load_into(state, expected, strict=False)
    assert "missing" not in str(ei2.value)


def test_load_into_copies_in_place():
    class Param:
        def __init__(self, a):
            self.data = a
            self.shape = a.shape

    w = np.zeros((2, 3), np.float32)
    p = Param(np.zeros(3, np.float32))
    expected = {"w": w, "b": p}
    state = {"w": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.ones(3, np.float32), "junk": np.zeros(1)}
    rep = S.load_into(state, expected, strict=False)
    assert rep["unexpected"] == ["junk"] and rep["missing"] == []
    np.testing.assert_array_equal(w, np.arange(6).reshape(2, 3))
    assert w.dtype == np.float32
    np.testing.assert_array_equal(p.data, 1.0)
    with pytest.raises(TypeError, match="'w'"):
        S.load_into({"w": np.zeros((2, 3), complex)}, {"w": w})
    assert S.check_state_dict({"a": np.zeros(2)}, {"a": np.zeros(2)}) == {
        "missing": [], "unexpected": [], "shape_mismatches": []}


class FakeTensor:
    """Mimics oxinet.Tensor: numpy() gives the array itself, data gives another Tensor."""

    def __init__(self, a):
        self._data = a

    def numpy(self):
        return self._data

    @property
    def data(self):
        return FakeTensor(self._data)

    @property
    def shape(self):
        return self._data.shape

    def __array__(self, dtype=None, copy=None):
        return self._data


class FakeModule:
    def __init__(self):
        self.w = FakeTensor(np.zeros((2, 3), np.float32))
        self.b = FakeTensor(np.zeros(3, np.float32))

    def state_dict(self):
        return {"w": self.w, "b": self.b}


def test_tensor_like_values_save_checkpoint_and_load_into(tmp_path):
    m = FakeModule()
    m.w._data[...] = np.arange(6).reshape(2, 3)
    oxinet.save(m, tmp_path / "m.safetensors")
    got = oxinet.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(got["w"], np.arange(6).reshape(2, 3))
    oxinet.save_checkpoint(tmp_path / "c.safetensors", model_state=m, epoch=1)
    ck = oxinet.load_checkpoint(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(ck["model"]["w"], m.w.numpy())
    fresh = FakeModule()
    S.load_into(ck["model"], fresh)  # writes through numpy() into the parameters
    np.testing.assert_array_equal(fresh.w.numpy(), np.arange(6).reshape(2, 3))
    with pytest.raises(S.StateDictMismatchError, match="'b'"):
        S.load_into({"w": ck["model"]["w"]}, FakeModule())


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_file_permissions_like_plain_open(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    oxinet.save({"w": np.zeros(1)}, tmp_path / "w.safetensors")
    assert (os.stat(tmp_path / "w.safetensors").st_mode & 0o777) == (os.stat(plain).st_mode & 0o777)
    os.chmod(tmp_path / "w.safetensors", 0o640)
    oxinet.save({"w": np.ones(1)}, tmp_path / "w.safetensors")  # keeps the previous file's mode
    assert (os.stat(tmp_path / "w.safetensors").st_mode & 0o777) == 0o640


def test_load_checkpoint_into_model_and_optimizer(tmp_path):
    class Opt:
        def __init__(self):
            self.loaded = None

        def state_dict(self):
            return {"state": {np.int64(0): {"m": np.ones(2)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}

        def load_state_dict(self, sd):
            self.loaded = sd

    class Mod(FakeModule):
        def load_state_dict(self, sd, strict=True):
            for k, v in sd.items():
                getattr(self, k).numpy()[...] = v

    m = Mod()
    m.w.numpy()[...] = 7
    path = tmp_path / "c.safetensors"
    oxinet.save_checkpoint(path, m, Opt(), epoch=3)
    m2, o2 = Mod(), Opt()
    ck = oxinet.load_checkpoint(path, model=m2, optimizer=o2)
    assert ck["epoch"] == 3
    np.testing.assert_array_equal(m2.w.numpy(), 7)
    assert o2.loaded["param_groups"][0]["lr"] == 0.1 and list(o2.loaded["state"]) == [0]
    target = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    oxinet.load_checkpoint(path, model=target)
    assert (target["w"] == 7).all()

    class Bigger(Mod):
        def __init__(self):
            super().__init__()
            self.w = FakeTensor(np.zeros((5, 3), np.float32))

    with pytest.raises(S.StateDictMismatchError, match=r"'w': loaded \(2, 3\) but expected \(5, 3\)"):
        oxinet.load_checkpoint(path, model=Bigger())
