"""``python -m oxinet [demo|info|bench] ...``.

``demo`` (the default): train LeNet-5 on the bundled digits (see ``oxinet.demo``).
``info``: version, SIMD level, thread count and a GEMM self-check.
``bench``: the side-by-side comparison table (see ``python -m oxinet bench --help``).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import oxinet


def self_check(n: int = 512) -> tuple[bool, str]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = oxinet.ops.matmul(a, b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.max(np.abs(c - ref)) / np.max(np.abs(ref)))
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        oxinet.ops.matmul(a, b)
    dt = (time.perf_counter() - t0) / reps
    ok = err < 1e-5
    return ok, (
        f"gemm self-check {n}x{n}x{n} float32: {'ok' if ok else 'FAILED'} "
        f"(max rel. error {err:.1e}), {2 * n**3 / dt / 1e9:.0f} GFLOP/s"
    )


def info() -> int:
    print(f"oxinet {oxinet.__version__}")
    print(f"simd: {oxinet.simd_level()}")
    print(f"threads: {oxinet.get_num_threads()}")
    ok, line = self_check()
    print(line)
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    if argv and argv[0] == "bench":
        from oxinet.benchmarks.harness import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv and argv[0] == "info":
        return info()
    from oxinet.demo import main as demo_main

    return demo_main(argv[1:] if argv and argv[0] == "demo" else argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
