"""SGD's fused Rust update against the NumPy formulas it replaces (bitwise), over momentum,
dampening, weight decay, Nesterov, maximize, float32/float64, several steps, and the NumPy
fallback for arrays the kernel does not take (non-contiguous parameters)."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
from oxinet import _core


def numpy_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    p = p.copy()
    buf = None
    for g in grads:
        if maximize:
            g = -g
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            if buf is None:
                buf = np.array(g, dtype=p.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1 - dampening) * g if dampening else g
            g = g + momentum * buf if nesterov else buf
        p -= lr * g
    return p, buf


OPTS = [
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.1, weight_decay=1e-3),
    dict(momentum=0.8, nesterov=True, weight_decay=5e-4),
    dict(momentum=0.9, maximize=True),
    dict(),
    dict(weight_decay=1e-2, maximize=True),
]


@pytest.mark.parametrize("opts", OPTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_sgd_equals_numpy_formulas_bitwise(opts, dtype, monkeypatch):
    from oxinet.optim import sgd as sgd_mod
    calls = []
    kernels = dict(sgd_mod._SGD_KERNELS)
    monkeypatch.setattr(sgd_mod, "_SGD_KERNELS", {
        k: (lambda f: lambda *a: (calls.append(1), f(*a)))(f) for k, f in kernels.items()})
    rng = np.random.default_rng(0)
    shape = (70, 33, 3, 3)  # several parallel chunks and a remainder
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    param = ox.nn.Parameter(p0.copy())
    opt = ox.optim.SGD([param], lr=0.05, **opts)
    for g in grads:
        param.grad = ox.tensor(g.copy(), dtype=dtype)
        opt.step()
    want, buf = numpy_sgd(p0, grads, 0.05, **opts)
    assert param.dtype == dtype and len(calls) == len(grads)  # the fused kernel ran
    np.testing.assert_array_equal(param.numpy(), want)
    if opts.get("momentum"):
        np.testing.assert_array_equal(opt.state[param]["momentum_buffer"], buf)


def test_fused_sgd_thread_count_does_not_matter():
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((300, 500)).astype(np.float32)
    grads = [rng.standard_normal(p0.shape).astype(np.float32) for _ in range(2)]
    outs = []
    try:
        for t in (1, 2):
            ox.set_num_threads(t)
            param = ox.nn.Parameter(p0.copy())
            opt = ox.optim.SGD([param], lr=0.1, momentum=0.9, weight_decay=1e-4)
            for g in grads:
                param.grad = ox.tensor(g)
                opt.step()
            outs.append(param.numpy())
    finally:
        ox.set_num_threads(2)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_non_contiguous_parameter_uses_the_numpy_path_with_the_same_result():
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal((8, 6)).astype(np.float32)
    grads = [rng.standard_normal((6, 8)).astype(np.float32).T for _ in range(3)]  # non-contiguous grads
    param = ox.nn.Parameter(p0.copy())
    opt = ox.optim.SGD([param], lr=0.1, momentum=0.9, nesterov=True)
    for g in grads:
        param.grad = ox.tensor(g)
        opt.step()
    want, _ = numpy_sgd(p0, grads, 0.1, momentum=0.9, nesterov=True)
    np.testing.assert_array_equal(param.numpy(), want)


def test_sgd_kernel_rejects_bad_arguments():
    p = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="'grad'"):
        _core.sgd_step_f32(p, np.zeros(3, np.float32), np.zeros(4, np.float32), False, 0.1, 0.9, 1.0, False, 0.0,
                           False, False)
    with pytest.raises(ValueError, match="'momentum_buffer'"):
        _core.sgd_step_f32(p, np.zeros(4, np.float32), None, False, 0.1, 0.9, 1.0, False, 0.0, False, False)
    with pytest.raises(ValueError, match="'param'"):
        _core.sgd_step_f32(np.zeros((4, 4), np.float32)[:, ::2], np.zeros((4, 2), np.float32), None, False, 0.1,
                           0.0, 1.0, False, 0.0, False, False)
