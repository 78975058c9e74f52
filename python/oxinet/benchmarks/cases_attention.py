"""Attention cases (issue 4): forward and forward+backward at three shapes.

Peers: a NumPy matmul-softmax-matmul implementation (the full L x S matrix, what one
writes without a fused kernel) and torch's scaled_dot_product_attention when installed.
FLOPs: forward 4*B*H*L*S*D; forward+backward counted as 3x forward (the products of the
textbook backward; the recomputation of the scores is not counted).
"""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

SHAPES = [(8, 8, 512, 64), (1, 8, 1024, 64), (32, 4, 128, 32)]


def _inputs(B, H, L, D):
    rng = np.random.default_rng(0)
    return tuple(rng.standard_normal((B, H, L, D), dtype=np.float32) for _ in range(4))


def numpy_forward(q, k, v):
    s = np.matmul(q, np.swapaxes(k, -1, -2))
    s *= np.float32(1 / np.sqrt(q.shape[-1]))
    s -= s.max(-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(-1, keepdims=True)
    return np.matmul(s, v), s


def numpy_forward_backward(q, k, v, g):
    scale = np.float32(1 / np.sqrt(q.shape[-1]))
    out, p = numpy_forward(q, k, v)
    dv = np.matmul(np.swapaxes(p, -1, -2), g)
    dp = np.matmul(g, np.swapaxes(v, -1, -2))
    dp -= (dp * p).sum(-1, keepdims=True)
    dp *= p
    dq = np.matmul(dp, k) * scale
    dk = np.matmul(np.swapaxes(dp, -1, -2), q) * scale
    return out, dq, dk, dv


for _B, _H, _L, _D in SHAPES:
    def _make(B, H, L, D):
        flops = 4.0 * B * H * L * L * D

        @case(f"sdpa fwd B{B} H{H} L{L} D{D}", group="attention", flops=flops, peers=("numpy", "torch"))
        def fwd(lib):
            q, k, v, _ = _inputs(B, H, L, D)
            if lib == "oxinet":
                import oxinet.ops as F

                return lambda: F.scaled_dot_product_attention(q, k, v)
            if lib == "numpy":
                return lambda: numpy_forward(q, k, v)
            if lib == "torch":
                import torch

                tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))

                def run():
                    with torch.no_grad():
                        return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)

                return run
            return None

        @case(f"sdpa fwd+bwd B{B} H{H} L{L} D{D}", group="attention", flops=3 * flops, peers=("numpy", "torch"))
        def fwd_bwd(lib):
            q, k, v, g = _inputs(B, H, L, D)
            if lib == "oxinet":
                import oxinet.ops as F

                def run():
                    out, lse = F.scaled_dot_product_attention(q, k, v, return_lse=True)
                    return F.scaled_dot_product_attention_backward(g, q, k, v, out, lse)

                return run
            if lib == "numpy":
                return lambda: numpy_forward_backward(q, k, v, g)
            if lib == "torch":
                import torch

                tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
                tg = torch.from_numpy(g)

                def run():
                    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
                    out.backward(tg)

                return run
            return None

    _make(_B, _H, _L, _D)
