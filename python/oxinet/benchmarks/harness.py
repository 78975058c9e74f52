"""The comparison harness.

A *case* is a factory ``f(lib) -> callable | None`` registered with :func:`case`. For each
case and each contender ("oxinet" and the case's peers) the harness starts a fresh
Python process, builds the inputs there, warms up, times the callable, and prints one
JSON line. Contenders alternate (A B A B ...) over several rounds, and the table
reports the median of the per-round times. Every process gets the same thread count
(``OXINET_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``)
and NumPy's OpenBLAS is told to use its AVX-512 kernels (``OPENBLAS_CORETYPE=SkylakeX``,
whatever the caller's environment says; ``OXINET_BENCH_OPENBLAS_CORETYPE`` overrides it),
so no library is timed next to another's spinning thread pool.

A peer may run under another Python: ``OXINET_BENCH_PYTHON_<PEER>`` (e.g.
``OXINET_BENCH_PYTHON_TORCH``) is a command, split like a shell line, that replaces this
interpreter for that contender's processes, with the directory holding ``oxinet`` put first
on its ``PYTHONPATH``. It lets a PyTorch installed elsewhere (a distribution's build in a
chroot, another venv) be timed in the same alternating run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pkgutil
import shlex
import statistics
import subprocess
import sys
import time
from typing import Callable

_REGISTRY: dict[str, "Case"] = {}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    group: str
    factory: Callable
    flops: float | None = None
    bytes: float | None = None
    peers: tuple[str, ...] = ("numpy",)
    module: str = ""
    items: float | None = None
    unit: str = "items"

    @property
    def contenders(self) -> tuple[str, ...]:
        return ("oxinet",) + tuple(p for p in self.peers if p != "oxinet")


def case(name: str, *, group: str, flops: float | None = None, bytes: float | None = None,
         peers: tuple[str, ...] = ("numpy",), items: float | None = None, unit: str = "items"):
    """Register ``factory(lib) -> callable | None`` as a benchmark case.

    ``flops`` (floating-point operations per call), ``bytes`` (bytes moved per call) or
    ``items`` (e.g. training samples per call, named by ``unit``) turn times into
    GFLOP/s, GB/s or items/s in the table.
    """

    def register(factory):
        if name in _REGISTRY:
            raise ValueError(f"benchmark case {name!r} is defined twice")
        _REGISTRY[name] = Case(name, group, factory, flops, bytes, tuple(peers), factory.__module__,
                               items, unit)
        return factory

    return register


def peer(case_name: str, label: str):
    """Attach another contender to an existing case from any ``cases_*`` module:
    ``factory(lib) -> callable | None`` is called with ``lib == label``. Lets a module
    for one peer library (e.g. ONNX Runtime) cover cases defined elsewhere."""

    def register(factory):
        _EXTRA_PEERS.setdefault(case_name, {})[label] = factory
        return factory

    return register


_EXTRA_PEERS: dict[str, dict[str, Callable]] = {}


def _with_extra_peers(cases: dict[str, Case]) -> dict[str, Case]:
    for name, extra in _EXTRA_PEERS.items():
        if name not in cases:
            raise ValueError(f"benchmark peer registered for unknown case {name!r}")
        c = cases[name]
        base = c.factory

        def factory(lib, base=base, extra=extra):
            return extra[lib](lib) if lib in extra else base(lib)

        cases[name] = dataclasses.replace(c, factory=factory,
                                          peers=c.peers + tuple(l for l in extra if l not in c.peers))
    return cases


def load_cases() -> dict[str, Case]:
    """Import every ``oxinet.benchmarks.cases_*`` module and return the registry."""
    import oxinet.benchmarks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("cases_"):
            importlib.import_module(f"oxinet.benchmarks.{info.name}")
    return _with_extra_peers(dict(_REGISTRY))


def time_callable(fn: Callable, min_time: float = 0.3, max_reps: int = 200) -> float:
    """Median seconds per call of ``fn`` after a warm-up, over at least ``min_time`` s."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    reps = int(min(max_reps, max(3, min_time / max(once, 1e-7))))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def worker(case_name: str, lib: str, threads: int, min_time: float) -> dict:
    cases = load_cases()
    c = cases[case_name]
    try:
        if lib == "torch":
            import torch

            torch.set_num_threads(threads)
        if lib == "oxinet":
            import oxinet

            oxinet.set_num_threads(threads)
        fn = c.factory(lib)
    except ImportError as e:
        return {"status": "n/a", "why": str(e)}
    if fn is None:
        return {"status": "n/a", "why": "not applicable"}
    return {"status": "ok", "seconds": time_callable(fn, min_time)}


def _env(threads: int) -> dict:
    env = dict(os.environ)
    t = str(threads)
    env.update(
        OXINET_NUM_THREADS=t,
        OMP_NUM_THREADS=t,
        OPENBLAS_NUM_THREADS=t,
        MKL_NUM_THREADS=t,
    )
    # OpenBLAS's Zen 5 detection may pick its AVX2 kernels (and machines here may export
    # OPENBLAS_CORETYPE=Haswell); the peer figure we compare with is its AVX-512 one.
    env["OPENBLAS_CORETYPE"] = os.environ.get("OXINET_BENCH_OPENBLAS_CORETYPE", "SkylakeX")
    return env


def interpreter(lib: str) -> tuple[list[str], dict]:
    """The command that starts ``lib``'s timing processes, and the environment entries it
    needs beyond :func:`_env`: this interpreter, or ``OXINET_BENCH_PYTHON_<LIB>``."""
    override = os.environ.get(f"OXINET_BENCH_PYTHON_{lib.upper()}", "").strip()
    if not override:
        return [sys.executable], {}
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(importlib.import_module("oxinet").__file__)))
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return shlex.split(override), {"PYTHONPATH": path}


def run_one(case_name: str, lib: str, threads: int, min_time: float) -> dict:
    """Time one contender on one case in a fresh process."""
    python, extra_env = interpreter(lib)
    cmd = python + ["-m", "oxinet.benchmarks._worker", case_name, lib, str(threads), str(min_time)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**_env(threads), **extra_env}, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"status": "error", "why": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclasses.dataclass
class Row:
    case: Case
    seconds: dict  # lib -> median seconds (or None)
    notes: dict  # lib -> why it has no time

    def ratio(self, peer: str) -> float | None:
        mine, theirs = self.seconds.get("oxinet"), self.seconds.get(peer)
        if mine and theirs:
            return theirs / mine
        return None


def compare(names: list[str], threads: int = 2, rounds: int = 3, min_time: float = 0.3,
            progress=None, peers: set[str] | None = None) -> list[Row]:
    """Time every contender of every named case, alternating, ``rounds`` times each
    (with ``peers`` given, only oxinet and those peers)."""
    cases = load_cases()
    rows = []
    for name in names:
        c = cases[name]
        times: dict[str, list[float]] = {lib: [] for lib in c.contenders}
        notes: dict[str, str] = {lib: "not selected" for lib in c.contenders[1:]
                                 if peers is not None and lib not in peers}
        for _ in range(rounds):
            for lib in c.contenders:
                if lib in notes:
                    continue
                r = run_one(name, lib, threads, min_time)
                if r["status"] == "ok":
                    times[lib].append(r["seconds"])
                else:
                    notes[lib] = r["why"] if r["status"] == "n/a" else f"error: {r['why']}"
        med = {lib: (statistics.median(t) if t else None) for lib, t in times.items()}
        rows.append(Row(c, med, notes))
        if progress:
            progress(rows[-1])
    return rows


def _rate(c: Case, seconds: float | None) -> str:
    if not seconds:
        return "-"
    if c.flops:
        return f"{c.flops / seconds / 1e9:.1f} GFLOP/s"
    if c.bytes:
        return f"{c.bytes / seconds / 1e9:.1f} GB/s"
    if c.items:
        rate = c.items / seconds
        for scale, prefix in ((1e9, "G "), (1e6, "M ")):
            if rate >= 10 * scale:
                return f"{rate / scale:.1f} {prefix}{c.unit}/s"
        return f"{rate:.0f} {c.unit}/s"
    return "-"


def format_row(row: Row) -> str:
    c = row.case
    mine = row.seconds.get("oxinet")
    parts = [f"{c.name:<48}", f"oxinet {mine * 1e3:9.3f} ms" if mine else "oxinet        n/a",
             f"{_rate(c, mine):>16}"]
    for peer in c.contenders[1:]:
        t = row.seconds.get(peer)
        r = row.ratio(peer)
        if t:
            parts.append(f"{peer} {t * 1e3:9.3f} ms ({_rate(c, t)}) x{r:.2f}" if r else f"{peer} {t * 1e3:9.3f} ms")
        else:
            parts.append(f"{peer} n/a")
    if row.notes.get("oxinet"):
        parts.append(f"(oxinet: {row.notes['oxinet']})")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m oxinet bench",
                                description="Time oxinet against its peers, each in its own process.")
    p.add_argument("--group", action="append", help="only cases of this group (repeatable)")
    p.add_argument("--filter", help="only cases whose name contains this text")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.3, help="seconds of timing per process")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--peers", help="comma-separated peers to time (default: every peer of each case)")
    args = p.parse_args(argv)
    peers = None if args.peers is None else {x.strip() for x in args.peers.split(",") if x.strip()}
    cases = load_cases()
    names = [n for n, c in cases.items()
             if (not args.group or c.group in args.group) and (not args.filter or args.filter in n)]
    if args.list:
        for n in names:
            print(f"{cases[n].group:<10} {n}")
        return 0
    if not names:
        print("no benchmark case matches", file=sys.stderr)
        return 2
    print(f"{len(names)} cases, {args.threads} threads, {args.rounds} alternating rounds; "
          f"ratio = peer time / oxinet time (> 1: oxinet faster)")
    rows = compare(names, args.threads, args.rounds, args.min_time,
                   progress=lambda r: print(format_row(r), flush=True), peers=peers)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"case": r.case.name, "group": r.case.group, "seconds": r.seconds,
                        "flops": r.case.flops, "bytes": r.case.bytes, "notes": r.notes}
                       for r in rows], f, indent=1)
    return 0

