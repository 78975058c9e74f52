"""Fused batch normalisation (oxinet.ops.batch_norm / batch_norm_backward and the
nn.functional.batch_norm node on it): NumPy references from the course's formulas
(F24: per-channel mean, biased variance, x_hat = (x - mu) / sqrt(var + eps),
y = gamma x_hat + beta), float64 finite-difference gradient checks, running statistics,
evaluation mode, fused activations, thread-count determinism and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
import oxinet.nn.functional as F
from oxinet import nn, ops
from helpers import check_grad, random_projection

SHAPES = [(2, 3), (5, 1), (1, 4, 5), (3, 2, 4, 5), (5, 3, 1, 1), (2, 17, 3, 3), (4, 5, 33), (2, 2, 2, 2, 3),
          (300, 40, 3), (40, 3, 40, 20)]  # the last two: several reduction chunks, short and long rows


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _cshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def ref_forward(x, w, b, eps, training, rm=None, rv=None, act=None, bounds=(-1.0, 1.0)):
    x = x.astype(np.float64)
    if training:
        mean = x.mean(axis=_axes(x))
        var = ((x - mean.reshape(_cshape(x))) ** 2).mean(axis=_axes(x))
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    xhat = (x - mean.reshape(_cshape(x))) / np.sqrt(var.reshape(_cshape(x)) + eps)
    y = xhat
    if w is not None:
        y = y * w.reshape(_cshape(x))
    if b is not None:
        y = y + b.reshape(_cshape(x))
    if act == "relu":
        y = np.maximum(y, 0)
    elif act == "relu6":
        y = np.clip(y, 0, 6)
    elif act == "hardtanh":
        y = np.clip(y, *bounds)
    return y, mean, var


def _data(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.7).astype(dtype)
    w = (rng.standard_normal(c) + 1).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_training_forward_matches_reference(shape, dtype, affine):
    x, w, b = _data(shape, dtype)
    if not affine:
        w = b = None
    y, mean, invstd = ops.batch_norm(x, None, None, w, b, training=True, eps=1e-5, return_stats=True)
    yr, mr, vr = ref_forward(x, w, b, 1e-5, True)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, yr, rtol=tol, atol=tol)
    np.testing.assert_allclose(mean, mr, rtol=tol, atol=tol)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(vr + 1e-5), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 4, 5), (2, 5, 7)])
def test_running_statistics_update(shape):
    x, w, b = _data(shape, np.float64, seed=1)
    c = shape[1]
    rm = np.linspace(-1, 1, c)
    rv = np.linspace(0.5, 2, c)
    rm0, rv0 = rm.copy(), rv.copy()
    ops.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3)
    _, mean, var = ref_forward(x, w, b, 1e-5, True)
    count = x.size // c
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * var * count / (count - 1), rtol=1e-12)


@pytest.mark.parametrize("act", [None, "relu", "relu6", "hardtanh"])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)])
def test_eval_mode_uses_running_statistics(act, shape):
    x, w, b = _data(shape, np.float32, seed=2)
    c = shape[1]
    rm = np.linspace(-0.5, 0.5, c).astype(np.float32)
    rv = np.linspace(0.5, 3, c).astype(np.float32)
    rm0 = rm.copy()
    y = ops.batch_norm(x * 3, rm, rv, w, b, training=False, activation=act, hardtanh_bounds=(-0.5, 1.5))
    yr, _, _ = ref_forward(x * 3, w, b, 1e-5, False, rm, rv, act, (-0.5, 1.5))
    np.testing.assert_allclose(y, yr, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rm, rm0)


@pytest.mark.parametrize("act", ["relu", "relu6", "hardtanh"])
@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 3, 5)])
def test_fused_activation_forward(act, shape):
    x, w, b = _data(shape, np.float64, seed=3)
    x *= 4  # reach both bounds of relu6
    y = ops.batch_norm(x, None, None, w * 4, b, training=True, activation=act, hardtanh_bounds=(-0.25, 0.5))
    yr, _, _ = ref_forward(x, w * 4, b, 1e-5, True, act=act, bounds=(-0.25, 0.5))
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)


def _loss_and_grads(x, w, b, training, act, rm, rv, proj, bounds=(-0.4, 0.6)):
    def f():
        y = ops.batch_norm(x, None if training else rm, None if training else rv, w, b, training=training,
                           activation=act, hardtanh_bounds=bounds)
        return float(np.sum(y * proj))

    _, mean, invstd = ops.batch_norm(x, None if training else rm, None if training else rv, w, b,
                                     training=training, activation=act, hardtanh_bounds=bounds, return_stats=True)
    grads = ops.batch_norm_backward(proj, x, mean, invstd, w, b, training, activation=act, hardtanh_bounds=bounds)
    return f, grads


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("act", [None, "relu", "relu6", "hardtanh"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 3), (3, 2, 5)])
def test_backward_finite_differences(training, act, shape):
    x, w, b = _data(shape, np.float64, seed=4)
    if act == "relu6":
        w = w * 4  # outputs on both sides of 6
    c = shape[1]
    rm = np.linspace(0.2, 0.9, c)
    rv = np.linspace(1.5, 4.0, c)
    proj = random_projection(shape, seed=5)
    f, (dx, dw, db) = _loss_and_grads(x, w, b, training, act, rm, rv, proj)
    check_grad(f, x, dx, tol=1e-6)
    check_grad(f, w, dw, tol=1e-6)
    check_grad(f, b, db, tol=1e-6)


def test_backward_without_affine_and_partial_needs():
    x, _, _ = _data((3, 2, 4), np.float64, seed=6)
    proj = random_projection(x.shape, seed=7)
    _, mean, invstd = ops.batch_norm(x, None, None, training=True, return_stats=True)
    dx, dw, db = ops.batch_norm_backward(proj, x, mean, invstd, training=True, needs=("input",))
    assert dw is None and db is None

    def f():
        return float(np.sum(ops.batch_norm(x, None, None, training=True) * proj))

    check_grad(f, x, dx, tol=1e-6)
    _, dw2, db2 = ops.batch_norm_backward(proj, x, mean, invstd, training=True, needs=("weight", "bias"))
    xhat, _, _ = ref_forward(x, None, None, 1e-5, True)
    np.testing.assert_allclose(dw2, (proj * xhat).sum(axis=(0, 2)), rtol=1e-10)
    np.testing.assert_allclose(db2, proj.sum(axis=(0, 2)), rtol=1e-12)


@pytest.mark.parametrize("shape", [(16, 8, 6, 6), (4, 3, 40, 40), (200, 30, 7)])
def test_float32_backward_matches_float64(shape):
    x, w, b = _data(shape, np.float64, seed=8)
    g = random_projection(x.shape, seed=9)
    out = []
    for dt in (np.float32, np.float64):
        _, m, s = ops.batch_norm(x.astype(dt), None, None, w.astype(dt), b.astype(dt), training=True,
                                 activation="relu", return_stats=True)
        out.append(ops.batch_norm_backward(g.astype(dt), x.astype(dt), m, s, w.astype(dt), b.astype(dt), True,
                                           activation="relu"))
    for a, r in zip(*out):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, r, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("shape", [(8, 24, 13, 11), (300, 64, 2, 2), (70, 40, 5, 5)])
def test_results_do_not_depend_on_thread_count(shape):
    x, w, b = _data(shape, np.float32, seed=10)
    g = random_projection(x.shape, seed=11).astype(np.float32)
    runs = []
    try:
        for threads in (1, 2, 3):
            ox.set_num_threads(threads)
            y, m, s = ops.batch_norm(x, None, None, w, b, training=True, activation="relu6", return_stats=True)
            grads = ops.batch_norm_backward(g, x, m, s, w, b, True, activation="relu6")
            runs.append((y, m, s) + grads)
    finally:
        ox.set_num_threads(2)
    for other in runs[1:]:
        for a, r in zip(runs[0], other):
            np.testing.assert_array_equal(a, r)


def test_non_contiguous_and_mixed_dtypes():
    x, w, b = _data((4, 6, 5, 3), np.float32, seed=12)
    xt = np.transpose(x, (0, 1, 3, 2))  # a view, not C-contiguous
    y = ops.batch_norm(xt, None, None, w, b, training=True)
    np.testing.assert_allclose(y, ref_forward(xt, w, b, 1e-5, True)[0], rtol=2e-5, atol=2e-5)
    y64 = ops.batch_norm(x, None, None, w.astype(np.float64), b, training=True)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, ref_forward(x, w, b, 1e-5, True)[0], rtol=1e-10, atol=1e-10)


def test_float32_statistics_far_from_zero():
    rng = np.random.default_rng(19)
    x = (1000.0 + rng.standard_normal((64, 4, 8, 8))).astype(np.float32)
    y, mean, invstd = ops.batch_norm(x, None, None, training=True, return_stats=True)
    xd = x.astype(np.float64)
    np.testing.assert_allclose(mean, xd.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(xd.var(axis=(0, 2, 3)) + 1e-5), rtol=1e-4)


def test_nan_stays_in_its_channel():
    x, w, b = _data((3, 3, 4), np.float64, seed=13)
    x[1, 1, 2] = np.nan
    y = ops.batch_norm(x, None, None, w, b, training=True)
    assert np.isnan(y[:, 1]).all()
    assert np.isfinite(y[:, [0, 2]]).all()


def test_empty_batch_in_eval_mode():
    x = np.zeros((0, 3, 4, 4), np.float32)
    y = ops.batch_norm(x, np.zeros(3, np.float32), np.ones(3, np.float32), training=False)
    assert y.shape == (0, 3, 4, 4) and y.dtype == np.float32


def test_bad_inputs():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match="'input'"):
        ops.batch_norm(x.astype(np.int32), None, None, training=True)
    with pytest.raises(ValueError, match="'weight'"):
        ops.batch_norm(x, None, None, np.ones(2, np.float32), training=True)
    with pytest.raises(ValueError, match="'running_var'"):
        ops.batch_norm(x, np.zeros(3), np.ones(4), training=False)
    with pytest.raises(ValueError, match="'running_mean'"):
        ops.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="more than 1 value"):
        ops.batch_norm(np.ones((1, 3), np.float32), None, None, training=True)
    with pytest.raises(ValueError, match="'input'"):
        ops.batch_norm(np.ones(3, np.float32), None, None, training=True)
    with pytest.raises(ValueError, match="'activation'"):
        ops.batch_norm(x, None, None, training=True, activation="gelu")
    with pytest.raises(ValueError, match="'hardtanh_bounds'"):
        ops.batch_norm(x, None, None, training=True, activation="hardtanh", hardtanh_bounds=(1.0, 0.0))
    m, s = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="'grad_output'"):
        ops.batch_norm_backward(np.ones((2, 3, 5), np.float32), x, m, s)
    with pytest.raises(ValueError, match="'save_invstd'"):
        ops.batch_norm_backward(x, x, m, np.ones(2, np.float32))
    with pytest.raises(ValueError, match="'needs'"):
        ops.batch_norm_backward(x, x, m, s, needs=("gamma",))


# ----------------------------------------------------------------------------- autograd layer


@pytest.mark.parametrize("act", [None, "relu6"])
def test_functional_batch_norm_gradients(act):
    x0, w0, b0 = _data((3, 2, 3, 2), np.float64, seed=14)
    proj = random_projection(x0.shape, seed=15)
    x, w, b = (ox.tensor(a, dtype=np.float64, requires_grad=True) for a in (x0, w0 * 4, b0))
    y = F.batch_norm(x, None, None, w, b, training=True, activation=act)
    (y * ox.tensor(proj, dtype=np.float64)).sum().backward()

    def f():
        return float(np.sum(ref_forward(x._data, w._data, b._data, 1e-5, True, act=act)[0] * proj))

    for t in (x, w, b):
        check_grad(f, t._data, t.grad._data, tol=1e-6)


def test_batchnorm2d_layer_train_and_eval():
    ox.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.25).double()
    x0, _, _ = _data((4, 3, 5, 5), np.float64, seed=16)
    y = bn(ox.tensor(x0, dtype=np.float64))
    np.testing.assert_allclose(y._data, ref_forward(x0, None, None, 1e-5, True)[0], rtol=1e-10, atol=1e-12)
    _, mean, var = ref_forward(x0, None, None, 1e-5, True)
    np.testing.assert_allclose(bn.running_mean._data, 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var._data, 0.75 + 0.25 * var * 100 / 99, rtol=1e-12)
    bn.eval()
    x = ox.tensor(x0, dtype=np.float64, requires_grad=True)
    y = bn(x)
    ref = (x0 - bn.running_mean._data.reshape(1, 3, 1, 1)) / np.sqrt(bn.running_var._data.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(y._data, ref, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad._data, np.broadcast_to(1 / np.sqrt(bn.running_var._data + 1e-5).reshape(1, 3, 1, 1),
                                                             x0.shape), rtol=1e-12)


# ----------------------------------------------------------------------------- fused BN + activation in models


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6, lambda: nn.Hardtanh(-0.5, 0.75)])
@pytest.mark.parametrize("training", [True, False])
def test_sequential_fuses_bn_activation_with_identical_results(act, training):
    ox.manual_seed(1)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), act())
    seq[1].weight._data[:] = np.array([3.0, -2.0, 0.5, 8.0], np.float32)
    seq.train(training)
    x0 = np.random.default_rng(17).standard_normal((3, 3, 5, 5)).astype(np.float32)
    proj = random_projection((3, 4, 5, 5), seed=18).astype(np.float32)
    results = []
    for fused in (True, False):
        for p in seq.parameters():
            p.grad = None
        seq[1].running_mean._data[:] = 0.25
        seq[1].running_var._data[:] = 2.0
        x = ox.tensor(x0, requires_grad=True)
        if fused:
            y = seq(x)
        else:  # module by module, as an unfused Sequential would
            y = seq[2](seq[1](seq[0](x)))
        (y * ox.tensor(proj)).sum().backward()
        results.append((y._data.copy(), x.grad._data.copy(), seq[1].weight.grad._data.copy(),
                        seq[1].bias.grad._data.copy(), seq[1].running_mean._data.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_hooks_and_custom_forward_disable_fusion():
    calls = []
    bn, act = nn.BatchNorm2d(2), nn.ReLU()
    act.register_forward_hook(lambda m, a, out: calls.append(out.shape))
    x = ox.randn(2, 2, 3, 3)
    y = nn.Sequential(bn, act)(x)
    assert calls == [(2, 2, 3, 3)] and (y._data >= 0).all()

    class Shifted(nn.BatchNorm2d):
        def forward(self, input):
            return super().forward(input) + 100.0

    y = nn.Sequential(Shifted(2), nn.ReLU())(x)
    assert abs(float(y._data.mean()) - 100.0) < 0.5  # the subclass forward ran (fused would give ~0.4)


def test_hardtanh_gradient_is_strict_at_the_bounds():
    x = ox.tensor(np.array([-1.0, -0.5, 0.0, 1.0, 2.0], np.float32), requires_grad=True)
    F.hardtanh(x, -0.5, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad._data, [0, 0, 1, 0, 0])
    x = ox.tensor(np.array([0.0, 3.0, 6.0], np.float32), requires_grad=True)
    F.relu6(x).sum().backward()
    np.testing.assert_array_equal(x.grad._data, [0, 1, 0])
