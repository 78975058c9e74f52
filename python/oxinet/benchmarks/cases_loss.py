"""Loss cases (issue 4): cross-entropy forward+backward on (4096, 10000) logits against a
good NumPy implementation (max subtraction, in-place exp, one softmax pass for the
gradient), softmax, binary cross-entropy with logits; plus activation cases (group
"activation") that decide which activations run in Rust, and an embedding backward."""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

N, C = 4096, 10000


def _logits():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, C), dtype=np.float32) * 3, rng.integers(0, C, N)


class NumpyCrossEntropy:
    """log-sum-exp with max subtraction, buffers reused, gradient = softmax - onehot."""

    def __init__(self, n, c):
        self.buf = np.empty((n, c), np.float32)
        self.rows = np.arange(n)

    def __call__(self, x, t):
        buf = self.buf
        m = x.max(1, keepdims=True)
        np.subtract(x, m, out=buf)
        picked = buf[self.rows, t]
        np.exp(buf, out=buf)
        s = buf.sum(1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) - picked)
        buf *= 1 / (s * len(t))
        buf[self.rows, t] -= np.float32(1 / len(t))
        return loss, buf


@case("cross_entropy fwd+bwd (4096, 10000)", group="loss", bytes=2.0 * N * C * 4, peers=("numpy", "torch"))
def ce_fwd_bwd(lib):
    x, t = _logits()
    if lib == "oxinet":
        import oxinet.ops as F

        out = np.empty_like(x)  # the NumPy peer reuses its buffer too
        return lambda: F.cross_entropy_with_grad(x, t, out=out)
    if lib == "numpy":
        f = NumpyCrossEntropy(N, C)
        return lambda: f(x, t)
    if lib == "torch":
        import torch

        tx = torch.from_numpy(x).requires_grad_()
        tt = torch.from_numpy(t)

        def run():
            tx.grad = None
            torch.nn.functional.cross_entropy(tx, tt).backward()

        return run
    return None


@case("cross_entropy fwd (4096, 10000)", group="loss", bytes=1.0 * N * C * 4, peers=("numpy",))
def ce_fwd(lib):
    x, t = _logits()
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.cross_entropy(x, t)
    if lib == "numpy":
        f = NumpyCrossEntropy(N, C)
        rows = np.arange(N)

        def run():
            m = x.max(1, keepdims=True)
            np.subtract(x, m, out=f.buf)
            picked = f.buf[rows, t]
            np.exp(f.buf, out=f.buf)
            return np.mean(np.log(f.buf.sum(1)) - picked)

        return run
    return None


@case("softmax fwd (4096, 10000)", group="loss", bytes=2.0 * N * C * 4, peers=("numpy",))
def softmax_fwd(lib):
    x, _ = _logits()
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.softmax(x)
    if lib == "numpy":
        def run():
            e = np.exp(x - x.max(1, keepdims=True))
            e /= e.sum(1, keepdims=True)
            return e

        return run
    return None


@case("log_softmax fwd (4096, 10000)", group="loss", bytes=2.0 * N * C * 4, peers=("numpy",))
def log_softmax_fwd(lib):
    x, _ = _logits()
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.log_softmax(x)
    if lib == "numpy":
        def run():
            z = x - x.max(1, keepdims=True)
            z -= np.log(np.exp(z).sum(1, keepdims=True))
            return z

        return run
    return None


@case("softmax bwd (4096, 10000)", group="loss", bytes=3.0 * N * C * 4, peers=("numpy",))
def softmax_bwd(lib):
    x, _ = _logits()
    import oxinet.ops as F

    y = F.softmax(x).copy()
    g = np.random.default_rng(3).standard_normal(x.shape, dtype=np.float32)
    if lib == "oxinet":
        return lambda: F.softmax_backward(g, y)
    if lib == "numpy":
        return lambda: y * (g - (g * y).sum(1, keepdims=True))
    return None


M = 1 << 22


def _vec():
    return np.random.default_rng(1).standard_normal(M, dtype=np.float32) * 3


@case("bce_with_logits fwd+bwd 4M", group="loss", bytes=3.0 * M * 4, peers=("numpy",))
def bce(lib):
    x = _vec()
    y = (np.random.default_rng(2).random(M) > 0.5).astype(np.float32)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.binary_cross_entropy_with_logits_with_grad(x, y)
    if lib == "numpy":
        def run():
            sp = np.logaddexp(0, -x)  # softplus(-x)
            loss = np.mean((1 - y) * x + sp)
            g = (1 / (1 + np.exp(-x)) - y) / M
            return loss, g

        return run
    return None


_NUMPY_ACTS = {
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, np.float32(0.01) * x),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x * x * x))),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "softplus": lambda x: np.logaddexp(0, x),
}
_NUMPY_BWD = {
    "sigmoid": lambda g, x: g * (s := 1 / (1 + np.exp(-x))) * (1 - s),
    "tanh": lambda g, x: g * (1 - np.tanh(x) ** 2),
    "relu": lambda g, x: g * (x > 0),
    "silu": lambda g, x: g * (s := 1 / (1 + np.exp(-x))) * (1 + x * (1 - s)),
}


def _act_case(name):
    @case(f"{name} fwd 4M", group="activation", bytes=2.0 * M * 4, peers=("numpy",))
    def fwd(lib):
        x = _vec()
        if lib == "oxinet":
            import oxinet.ops as F

            f = F.gelu if name == "gelu_tanh" else getattr(F, name)
            kw = {"approximate": "tanh"} if name == "gelu_tanh" else {}
            return lambda: f(x, **kw)
        if lib == "numpy":
            return lambda: _NUMPY_ACTS[name](x)
        return None

    if name in _NUMPY_BWD:
        @case(f"{name} bwd 4M", group="activation", bytes=3.0 * M * 4, peers=("numpy",))
        def bwd(lib):
            x = _vec()
            g = np.random.default_rng(3).standard_normal(M, dtype=np.float32)
            if lib == "oxinet":
                import oxinet.ops as F

                f = getattr(F, name + "_backward")
                return lambda: f(g, x)
            if lib == "numpy":
                return lambda: _NUMPY_BWD[name](g, x)
            return None


for _n in _NUMPY_ACTS:
    _act_case(_n)


@case("gelu (exact) fwd 4M", group="activation", bytes=2.0 * M * 4, peers=("numpy-math-erf",))
def gelu_exact(lib):
    x = _vec()
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.gelu(x)
    if lib == "numpy-math-erf":  # NumPy has no erf: the vectorised math.erf is the NumPy way
        import math

        erf = np.frompyfunc(math.erf, 1, 1)
        xs = x[: M // 64]
        return lambda: [0.5 * xs * (1 + erf(xs / np.float32(1.4142135)).astype(np.float32)) for _ in range(64)]
    return None


@case("embedding bwd 65536 idx -> (50000, 256)", group="embedding", bytes=2.0 * 65536 * 256 * 4, peers=("numpy",))
def emb_bwd(lib):
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 50000, 65536)
    g = rng.standard_normal((65536, 256), dtype=np.float32)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.embedding_backward(g, idx, 50000)
    if lib == "numpy":
        def run():
            dw = np.zeros((50000, 256), np.float32)
            np.add.at(dw, idx, g)
            return dw

        return run
    return None


@case("embedding fwd 65536 idx from (50000, 256)", group="embedding", bytes=2.0 * 65536 * 256 * 4, peers=("numpy",))
def embedding_fwd(lib):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((50000, 256), dtype=np.float32)
    idx = rng.integers(0, 50000, 65536)
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.embedding(idx, weight)
    return (lambda: np.take(weight, idx, axis=0)) if lib == "numpy" else None
