"""``python -m oxinet``: version, SIMD level, thread count and a GEMM self-check."""

from __future__ import annotations

import sys
import time

import numpy as np

import oxinet


def self_check(n: int = 512) -> str:
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
    status = "ok" if err < 1e-5 else "FAILED"
    return (
        f"gemm self-check {n}x{n}x{n} float32: {status} (max rel. error {err:.1e}), "
        f"{2 * n**3 / dt / 1e9:.0f} GFLOP/s"
    )


def main(argv: list[str]) -> int:
    print(f"oxinet {oxinet.__version__}")
    print(f"simd: {oxinet.simd_level()}")
    print(f"threads: {oxinet.get_num_threads()}")
    line = self_check()
    print(line)
    return 0 if "ok" in line else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
