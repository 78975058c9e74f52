"""GEMM cases: square products, im2col-shaped products, a small one, a batched one."""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case


def _rand(*shape):
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def _gemm_case(m, n, k, label):
    @case(f"sgemm {label} M{m} N{n} K{k}", group="gemm", flops=2.0 * m * n * k, peers=("numpy", "torch"))
    def factory(lib):
        a, b = _rand(m, k), _rand(k, n)
        if lib == "oxinet":
            import oxinet.ops as F

            out = np.empty((m, n), np.float32)
            return lambda: F.matmul(a, b, out=out)
        if lib == "numpy":
            out = np.empty((m, n), np.float32)
            return lambda: np.matmul(a, b, out=out)
        if lib == "torch":
            import torch

            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            out = torch.empty(m, n)
            return lambda: torch.matmul(ta, tb, out=out)
        return None

    return factory


_gemm_case(1024, 1024, 1024, "square")
_gemm_case(2048, 2048, 2048, "square")
_gemm_case(64, 3136, 576, "im2col")
_gemm_case(256, 196, 2304, "im2col")
_gemm_case(32, 128, 1024, "small")


@case("sgemm batched 256x(128x64 @ 64x128)", group="gemm", flops=2.0 * 256 * 128 * 128 * 64,
      peers=("numpy", "torch"))
def batched(lib):
    a, b = _rand(256, 128, 64), _rand(256, 64, 128)
    if lib == "oxinet":
        import oxinet.ops as F

        out = np.empty((256, 128, 128), np.float32)
        return lambda: F.matmul(a, b, out=out)
    if lib == "numpy":
        out = np.empty((256, 128, 128), np.float32)
        return lambda: np.matmul(a, b, out=out)
    if lib == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.bmm(ta, tb)
    return None
