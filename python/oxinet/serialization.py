"""Saving and loading weights: safetensors (written and read in NumPy, no extra package)
and ``.npz``; checkpoints of model state, optimizer state and epoch; and the name/shape
check that reports every mismatch at once.

Every write goes to a temporary file in the target's directory, is flushed and fsync'ed,
and then atomically renamed over the target (``os.replace``): a crash mid-save leaves the
previous file intact.

The safetensors layout (https://huggingface.co/docs/safetensors): 8 bytes little-endian
unsigned header length ``n``; ``n`` bytes of UTF-8 JSON mapping each tensor name to
``{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}`` (offsets relative to
the data section) plus an optional ``"__metadata__"`` map of strings; then the raw
little-endian, C-ordered tensor bytes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = [
    "save",
    "load",
    "save_safetensors",
    "load_safetensors",
    "save_npz",
    "load_npz",
    "save_checkpoint",
    "load_checkpoint",
    "check_state_dict",
    "load_into",
    "StateDictMismatchError",
    "atomic_write",
]

# --- atomic writes ------------------------------------------------------------------------


def _fsync_dir(directory: str) -> None:
    """Persist a rename on POSIX (best effort; not possible on Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_file_mode(path: str) -> int | None:
    """The permission bits the saved file should get: the previous file's, or what a plain
    ``open(path, "w")`` would create (0o666 minus the umask), not mkstemp's private 0o600."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    if os.name != "posix":
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no portable read-only query; restore at once
    os.umask(old)
    return 0o666 & ~old


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Any]:
    """Open a temporary binary file next to ``path``; on a clean exit it is flushed,
    fsync'ed and renamed over ``path``. On an exception the temporary file is removed and
    ``path`` is untouched.

    >>> with atomic_write("model.safetensors") as f:
    ...     f.write(data)
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


# --- state dict normalisation -----------------------------------------------------------


def _tensor_array(value: Any) -> np.ndarray | None:
    """The ndarray behind a Tensor/Parameter (``numpy()``, no copy), else None."""
    f = getattr(value, "numpy", None)
    if callable(f) and not isinstance(value, (np.ndarray, np.generic)):
        try:
            arr = f()
        except TypeError:
            return None
        if isinstance(arr, np.ndarray):
            return arr
    return None


def _to_array(value: Any, name: str, who: str) -> np.ndarray:
    """An ndarray from an array, a Tensor/Parameter (anything with ``numpy()`` or
    ``data``), a NumPy scalar or a Python number."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bool, int, float, np.generic)):
        return np.asarray(value)
    arr = _tensor_array(value)
    if arr is not None:
        return arr
    data = getattr(value, "data", None)
    if isinstance(data, np.ndarray):
        return data
    try:
        arr = np.asarray(value)
    except Exception:
        arr = None
    if arr is None or arr.dtype == object:
        raise TypeError(
            f"{who}: value {name!r} is a {type(value).__name__}, not an array; state dicts map "
            f"names to arrays (use save_checkpoint for nested state with numbers and lists)"
        )
    return arr


def _state_of(obj: Any, who: str) -> dict[str, np.ndarray]:
    """A flat ``{name: ndarray}`` from a dict or an object with ``state_dict()``."""
    if not isinstance(obj, Mapping) and callable(getattr(obj, "state_dict", None)):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise TypeError(f"{who}: 'obj' must be a dict of arrays or have state_dict(), got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"{who}: state dict keys must be strings, got {k!r} ({type(k).__name__})")
        out[k] = _to_array(v, k, who)
    return out


# --- safetensors -------------------------------------------------------------------------

_ST_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}
_NP_TO_ST = {(dt.kind, dt.itemsize): code for code, dt in _ST_DTYPES.items()}
_HEADER_LIMIT = 100 * 1024 * 1024  # the reference implementation's bound


def _st_code(a: np.ndarray, name: str, who: str) -> str:
    code = _NP_TO_ST.get((a.dtype.kind, a.dtype.itemsize))
    if code is None:
        raise TypeError(
            f"{who}: tensor {name!r} has dtype {a.dtype}, which safetensors cannot store "
            f"(bool, int8-64, uint8-64, float16/32/64)"
        )
    return code


def _safetensors_bytes(state: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None, who: str):
    """(header bytes, list of arrays in data order)."""
    for k in state:
        if k == "__metadata__":
            raise ValueError(f"{who}: '__metadata__' is reserved and cannot be a tensor name")
    # Data order: larger items first, so every tensor starts at a multiple of its item
    # size (the header is padded to 8 bytes). The JSON keeps the caller's order.
    names = list(state)
    order = sorted(range(len(names)), key=lambda i: -state[names[i]].dtype.itemsize)
    entries: dict[str, Any] = {}
    if metadata:
        bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
        if bad:
            raise TypeError(f"{who}: 'metadata' must map strings to strings, got {bad!r:.200}")
        entries["__metadata__"] = dict(metadata)
    offsets = {}
    pos = 0
    arrays = []
    for i in order:
        a = state[names[i]]
        code = _st_code(a, names[i], who)
        le = np.ascontiguousarray(a, dtype=_ST_DTYPES[code])
        offsets[names[i]] = (code, list(a.shape), pos, pos + le.nbytes)
        pos += le.nbytes
        arrays.append(le)
    for n in names:
        code, shape, b, e = offsets[n]
        entries[n] = {"dtype": code, "shape": shape, "data_offsets": [b, e]}
    header = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header, arrays


def _write_arrays(f, head: bytes, arrays) -> None:
    f.write(head)
    for a in arrays:
        if a.size:
            f.write(memoryview(a.reshape(-1)).cast("B"))


def save_safetensors(obj: Any, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a state dict (``{name: array}`` or an object with ``state_dict()``) as a
    ``.safetensors`` file, atomically. ``metadata``: optional ``{str: str}``."""
    who = "save_safetensors"
    state = _state_of(obj, who)
    head, arrays = _safetensors_bytes(state, metadata, who)
    with atomic_write(path) as f:
        _write_arrays(f, head, arrays)


def _read_safetensors(buf: bytes | bytearray | memoryview, who: str, source: str):
    size = len(buf)
    if size < 8:
        raise ValueError(f"{who}: {source} is too short for a safetensors file ({size} bytes)")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > _HEADER_LIMIT or 8 + n > size:
        raise ValueError(f"{who}: {source} has a header length of {n} bytes but the file has {size} bytes")
    try:
        header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{who}: {source} has a malformed safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{who}: {source} header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    data_len = size - data_start
    out: dict[str, np.ndarray] = {}
    spans = []
    for name, info in header.items():
        try:
            code, shape, (b, e) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{who}: {source}: tensor {name!r} has a malformed entry {info!r:.200}") from None
        if code == "BF16":
            dt = np.dtype("<u2")
        elif code in _ST_DTYPES:
            dt = _ST_DTYPES[code]
        else:
            raise TypeError(f"{who}: {source}: tensor {name!r} has dtype {code}, which oxinet cannot read")
        count = math.prod(shape)
        if any(s < 0 for s in shape) or not (0 <= b <= e <= data_len) or e - b != count * dt.itemsize:
            raise ValueError(
                f"{who}: {source}: tensor {name!r} ({code}, shape {shape}) has data_offsets [{b}, {e}] "
                f"that do not fit its size ({count * dt.itemsize} bytes) or the data section ({data_len} bytes)"
            )
        spans.append((b, e, name))
        a = np.frombuffer(buf, dtype=dt, count=count, offset=data_start + b).reshape(shape)
        if code == "BF16":  # bfloat16 is the top half of a float32
            a = (a.astype(np.uint32) << 16).view(np.float32)
        elif not (a.dtype.isnative and a.flags.aligned and a.flags.writeable):
            a = a.astype(dt.newbyteorder("="))  # own, native-order, aligned, writable copy
        out[name] = a
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise ValueError(f"{who}: {source}: tensor {name!r} does not start where the previous one ends (offset {b}, expected {pos})")
        pos = e
    if pos != data_len:
        raise ValueError(f"{who}: {source}: the data section has {data_len} bytes but the tensors cover {pos}")
    return out, dict(metadata)


def load_safetensors(path: str | os.PathLike, return_metadata: bool = False):
    """Read a ``.safetensors`` file (written by oxinet, the ``safetensors`` package or
    anyone else) into ``{name: ndarray}`` in the header's order. BF16 tensors are widened to
    float32. With ``return_metadata`` also returns the ``__metadata__`` dict.

    The file is read once into one buffer and aligned tensors are writable views of it
    (no second copy); the buffer lives as long as any of the arrays does (``.copy()`` a
    small tensor you keep on its own)."""
    # One read into a mutable buffer; aligned native-order tensors are views of it (writable,
    # no second copy). oxinet's writer aligns every tensor to its item size.
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = np.empty(size, np.uint8)
        got = f.readinto(memoryview(buf))
    if got != size:
        raise ValueError(f"load_safetensors: read {got} of {size} bytes from {os.fspath(path)!r}")
    state, meta = _read_safetensors(buf, "load_safetensors", repr(os.fspath(path)))
    return (state, meta) if return_metadata else state


# --- npz ----------------------------------------------------------------------------------


def save_npz(obj: Any, path: str | os.PathLike, compressed: bool = False) -> None:
    """Write a state dict as a NumPy ``.npz`` archive (one ``.npy`` member per name),
    atomically. The path is used as given (NumPy's automatic ``.npz`` suffix is not added)."""
    who = "save_npz"
    state = _state_of(obj, who)
    for k, a in state.items():
        if a.dtype == object:
            raise TypeError(f"{who}: tensor {k!r} has dtype object, which cannot be saved without pickle")
    with atomic_write(path) as f:
        (np.savez_compressed if compressed else np.savez)(f, **state)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``.npz`` archive into ``{name: ndarray}`` (no pickles are loaded)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --- format dispatch ----------------------------------------------------------------------


def _format_of(path, format: str | None, who: str) -> str:
    if format is not None:
        if format not in ("safetensors", "npz"):
            raise ValueError(f"{who}: 'format' must be 'safetensors' or 'npz', got {format!r}")
        return format
    p = os.fspath(path).lower()
    if p.endswith(".npz"):
        return "npz"
    if p.endswith((".safetensors", ".st")):
        return "safetensors"
    raise ValueError(
        f"{who}: cannot tell the format from the path {os.fspath(path)!r}; use a .safetensors or "
        f".npz suffix or pass format='safetensors'/'npz'"
    )


def save(obj: Any, path: str | os.PathLike, format: str | None = None, metadata: Mapping[str, str] | None = None) -> None:
    """Save weights: a state dict ``{name: array}`` or a model with ``state_dict()``.

    The format follows the suffix (``.safetensors`` or ``.npz``) unless ``format`` is given.
    The write is atomic (temporary file, fsync, rename). ``metadata`` (strings) is kept in
    the safetensors header.
    """
    fmt = _format_of(path, format, "save")
    if fmt == "npz":
        if metadata:
            raise ValueError("save: 'metadata' is only supported for the safetensors format")
        save_npz(obj, path)
    else:
        save_safetensors(obj, path, metadata)


def load(path: str | os.PathLike, format: str | None = None) -> dict[str, np.ndarray]:
    """Load a state dict saved by :func:`save` (or any safetensors/npz file of arrays).
    Use ``model.load_state_dict(load(path))`` or :func:`load_into` to apply it."""
    fmt = _format_of(path, format, "load")
    return load_npz(path) if fmt == "npz" else load_safetensors(path)


# --- checkpoints --------------------------------------------------------------------------

_CKPT_FORMAT = "oxinet.checkpoint"
_CKPT_VERSION = "1"


def _encode(node: Any, path: str, tensors: dict, who: str) -> Any:
    """A JSON tree for ``node``; arrays (and NumPy scalars) go into ``tensors``."""
    if node is None or isinstance(node, (bool, str)):
        return node
    if isinstance(node, int):
        return node
    if isinstance(node, float):
        if math.isfinite(node):
            return node
        return {"$float": repr(node)}
    if isinstance(node, (np.ndarray, np.generic)):
        key = path or "tensor"
        base, i = key, 1
        while key in tensors:
            i += 1
            key = f"{base}#{i}"
        a = np.asarray(node)
        tensors[key] = a
        return {"$tensor": key, "scalar": isinstance(node, np.generic)}
    if isinstance(node, Mapping):
        items = []
        for k, v in node.items():
            if isinstance(k, np.generic) and not isinstance(k, (np.str_, np.bytes_)):
                k = k.item()
            if not isinstance(k, (str, int, bool, float)) and k is not None and not isinstance(k, tuple):
                raise TypeError(f"{who}: dict key {k!r} at {path or '<root>'!r} must be a str, int, float, bool, None or tuple")
            sub = f"{path}/{k}" if path else str(k)
            items.append([_encode(k, sub + "#key", {}, who) if isinstance(k, tuple) else k, _encode(v, sub, tensors, who)])
        if all(isinstance(k, str) for k, _ in items):
            return {"$dict": {k: v for k, v in items}}
        return {"$items": items}
    if isinstance(node, (list, tuple)):
        enc = [_encode(v, f"{path}/{i}" if path else str(i), tensors, who) for i, v in enumerate(node)]
        return {"$tuple": enc} if isinstance(node, tuple) else enc
    arr = _tensor_array(node)
    if arr is None:
        arr = getattr(node, "data", None)
    if isinstance(arr, np.ndarray):  # a Tensor/Parameter: stored as its array
        return _encode(arr, path, tensors, who)
    raise TypeError(
        f"{who}: cannot store {type(node).__name__} at {path or '<root>'!r}; checkpoints hold arrays, "
        f"numbers, strings, None, and dicts/lists/tuples of them"
    )


def _decode(node: Any, tensors: Mapping[str, np.ndarray], who: str) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors, who) for v in node]
    if not isinstance(node, dict):
        return node
    if "$tensor" in node:
        a = tensors[node["$tensor"]]
        return a[()] if node.get("scalar") else a
    if "$float" in node:
        return float(node["$float"])
    if "$tuple" in node:
        return tuple(_decode(v, tensors, who) for v in node["$tuple"])
    if "$dict" in node:
        return {k: _decode(v, tensors, who) for k, v in node["$dict"].items()}
    if "$items" in node:
        return {
            (_decode(k, {}, who) if isinstance(k, dict) else k): _decode(v, tensors, who)
            for k, v in node["$items"]
        }
    raise ValueError(f"{who}: unknown node in checkpoint structure: {node!r:.200}")


def save_checkpoint(
    path: str | os.PathLike,
    model_state: Any = None,
    optimizer_state: Any = None,
    epoch: int | None = None,
    **extra: Any,
) -> None:
    """Save a training checkpoint as one safetensors file, atomically.

    ``model_state``/``optimizer_state`` are state dicts or objects with ``state_dict()``;
    they, ``epoch`` and any ``extra`` entries (e.g. ``scheduler_state``, ``history``,
    ``rng_state``) may nest dicts (string or int keys), lists and tuples of arrays, NumPy
    scalars, Python numbers, strings and None. :func:`load_checkpoint` gives back the same
    structure with the same types and bit-identical arrays. The arrays are stored as
    ordinary safetensors tensors named by their path (e.g. ``model/fc1.weight``), so other
    tools can read the weights; the structure is JSON in the header metadata.
    """
    who = "save_checkpoint"

    def _sd(x):
        return x.state_dict() if (x is not None and not isinstance(x, Mapping) and callable(getattr(x, "state_dict", None))) else x

    tree = {"model": _sd(model_state), "optimizer": _sd(optimizer_state), "epoch": epoch}
    for k, v in extra.items():
        tree[k] = _sd(v)
    tensors: dict[str, np.ndarray] = {}
    structure = _encode(tree, "", tensors, who)
    for k, a in tensors.items():
        _st_code(a, k, who)
    meta = {"format": _CKPT_FORMAT, "version": _CKPT_VERSION, "structure": json.dumps(structure)}
    head, arrays = _safetensors_bytes(tensors, meta, who)
    with atomic_write(path) as f:
        _write_arrays(f, head, arrays)


def load_checkpoint(path: str | os.PathLike, model: Any = None, optimizer: Any = None, strict: bool = True) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`: a dict with keys ``model``,
    ``optimizer``, ``epoch`` and any extra entries, exactly as saved.

    With ``model`` (an object with ``state_dict()``/``load_state_dict()``, or a dict of
    arrays) the saved weights are first checked against it (:func:`check_state_dict`,
    every mismatch in one error) and then loaded into it; with ``optimizer`` its
    ``load_state_dict`` receives the saved optimizer state. Training then resumes at
    ``checkpoint["epoch"] + 1``.
    """
    who = "load_checkpoint"
    tensors, meta = load_safetensors(path, return_metadata=True)
    if meta.get("format") != _CKPT_FORMAT:
        raise ValueError(
            f"{who}: {os.fspath(path)!r} is not an oxinet checkpoint (metadata format "
            f"{meta.get('format')!r}); use oxinet.load for plain weight files"
        )
    ck = _decode(json.loads(meta["structure"]), tensors, who)
    if model is not None:
        if ck.get("model") is None:
            raise ValueError(f"{who}: {os.fspath(path)!r} holds no model state")
        if isinstance(model, Mapping):
            load_into(ck["model"], model, strict)
        else:
            check_state_dict(ck["model"], model.state_dict(), strict, who)
            model.load_state_dict(ck["model"], strict=strict)
    if optimizer is not None:
        if ck.get("optimizer") is None:
            raise ValueError(f"{who}: {os.fspath(path)!r} holds no optimizer state")
        optimizer.load_state_dict(ck["optimizer"])
    return ck


# --- state dict checks --------------------------------------------------------------------


class StateDictMismatchError(ValueError):
    """Raised by :func:`check_state_dict`/:func:`load_into`; ``missing``, ``unexpected`` and
    ``shape_mismatches`` hold the details."""

    def __init__(self, message: str, missing, unexpected, shape_mismatches):
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches


def _shape(v: Any) -> tuple:
    s = getattr(v, "shape", None)
    if s is None:
        s = np.shape(v)
    return tuple(int(d) for d in s)


def check_state_dict(state: Mapping[str, Any], expected: Mapping[str, Any], strict: bool = True, who: str = "load_into") -> dict:
    """Compare a loaded ``state`` with the ``expected`` one (e.g. ``model.state_dict()``).

    Returns ``{"missing": [...], "unexpected": [...], "shape_mismatches": [(name, got,
    expected), ...]}``. Raises :class:`StateDictMismatchError` listing EVERY problem in one
    message when there is a shape mismatch, or (with ``strict``) a missing or unexpected
    name. Values only need a ``shape`` (arrays, Tensors, Parameters).
    """
    if not isinstance(expected, Mapping) and callable(getattr(expected, "state_dict", None)):
        expected = expected.state_dict()
    if not isinstance(state, Mapping) and callable(getattr(state, "state_dict", None)):
        state = state.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mism = []
    for k in expected:
        if k in state:
            got, want = _shape(state[k]), _shape(expected[k])
            if got != want:
                mism.append((k, got, want))
    report = {"missing": missing, "unexpected": unexpected, "shape_mismatches": mism}
    if mism or (strict and (missing or unexpected)):
        parts = []
        if missing and strict:
            parts.append(f"{len(missing)} missing")
        if unexpected and strict:
            parts.append(f"{len(unexpected)} unexpected")
        if mism:
            parts.append(f"{len(mism)} with a different shape")
        lines = [f"{who}: the state dict does not match ({', '.join(parts)}):"]
        if strict:
            lines += [f"  missing key {k!r}: expected shape {_shape(expected[k])}" for k in missing]
            lines += [f"  unexpected key {k!r}: shape {_shape(state[k])}" for k in unexpected]
        lines += [f"  shape mismatch for {k!r}: loaded {g} but expected {w}" for k, g, w in mism]
        raise StateDictMismatchError("\n".join(lines), missing, unexpected, mism)
    return report


def load_into(state: Mapping[str, Any], expected: Mapping[str, Any], strict: bool = True) -> dict:
    """Check ``state`` against ``expected`` (see :func:`check_state_dict`) and copy every
    matching array into the expected arrays in place (casting as NumPy's ``same_kind``
    allows, e.g. float64 -> float32). Values of ``expected`` may be ndarrays, Tensors or
    Parameters (their ``numpy()`` array, or a ``data`` attribute that is an ndarray).
    Returns the report dict."""
    if not isinstance(expected, Mapping) and callable(getattr(expected, "state_dict", None)):
        expected = expected.state_dict()
    report = check_state_dict(state, expected, strict, "load_into")
    for k, target in expected.items():
        if k not in state:
            continue
        dst = target if isinstance(target, np.ndarray) else _tensor_array(target)
        if dst is None:
            dst = getattr(target, "data", None)
        if not isinstance(dst, np.ndarray):
            raise TypeError(f"load_into: expected[{k!r}] is a {type(target).__name__} without an ndarray to copy into")
        src = _to_array(state[k], k, "load_into")
        try:
            np.copyto(dst, src, casting="same_kind")
        except TypeError as e:
            raise TypeError(f"load_into: cannot copy {k!r} of dtype {src.dtype} into dtype {dst.dtype}: {e}") from None
    return report
