"""cross_entropy / nll_loss / binary_cross_entropy_with_logits: NumPy references of
PyTorch's formulas (weights, ignore_index, label smoothing, probability targets,
reductions), float64 finite-difference gradients, numerics, errors."""

import numpy as np
import pytest

import oxinet.ops as F
from helpers import check_grad, random_projection


def log_softmax(x, axis):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def ref_cross_entropy(x, t, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """PyTorch's cross_entropy written out (class axis 1, or 0 for a 1-D input)."""
    x = np.asarray(x, np.float64)
    cax = 0 if x.ndim == 1 else 1
    C = x.shape[cax]
    lp = log_softmax(x, cax)
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    wshape = [1] * x.ndim
    wshape[cax] = C
    wb = w.reshape(wshape)
    if np.issubdtype(np.asarray(t).dtype, np.floating):
        tt = np.asarray(t, np.float64) * (1 - eps) + eps / C
        per = -(lp * tt * wb).sum(cax)
        if reduction == "none":
            return per
        n = x.size / C
        return per.sum() / n if reduction == "mean" else per.sum()
    t = np.asarray(t)
    keep = t != ignore_index
    safe = np.where(keep, t, 0)
    picked = np.take_along_axis(lp, np.expand_dims(safe, cax), cax).squeeze(cax)
    wt = np.where(keep, w[safe], 0.0)
    nll = -wt * picked
    smooth = np.where(keep, -(lp * wb).sum(cax), 0.0)
    per = (1 - eps) * nll + eps / C * smooth
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / wt.sum()


def rand(*shape, seed=0, scale=2.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def targets(shape, C, seed=1, ignore=None):
    t = np.random.default_rng(seed).integers(0, C, shape)
    if ignore is not None:
        t.flat[::3] = ignore
    return t


CE_CASES = [
    # (input shape, weight?, ignore?, reduction, eps)
    ((6, 5), False, False, "mean", 0.0),
    ((6, 5), True, False, "mean", 0.0),
    ((6, 5), True, True, "mean", 0.0),
    ((6, 5), True, True, "mean", 0.2),
    ((6, 5), False, True, "sum", 0.1),
    ((6, 5), True, True, "none", 0.3),
    ((2, 4, 3, 2), True, True, "mean", 0.1),
    ((2, 4, 3), False, False, "none", 0.0),
    ((5,), True, False, "mean", 0.1),
]


@pytest.mark.parametrize("case", CE_CASES)
def test_cross_entropy_index_targets(case):
    shape, use_w, use_ign, red, eps = case
    C = shape[0] if len(shape) == 1 else shape[1]
    x = rand(*shape, seed=2)
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = targets(tshape, C, ignore=7 if use_ign else None)
    w = np.random.default_rng(3).random(C) + 0.5 if use_w else None
    kw = dict(ignore_index=7, reduction=red, label_smoothing=eps)
    got = F.cross_entropy(x, t, w, **kw)
    np.testing.assert_allclose(got, ref_cross_entropy(x, t, w, 7, red, eps), rtol=1e-12, atol=1e-14)
    # float32 keeps its dtype and agrees
    got32 = F.cross_entropy(x.astype(np.float32), t, None if w is None else w.astype(np.float32), **kw)
    assert np.asarray(got32).dtype == np.float32
    np.testing.assert_allclose(got32, ref_cross_entropy(x, t, w, 7, red, eps), rtol=2e-5, atol=1e-5)
    # gradient: fused and separate, against finite differences
    P = random_projection(np.shape(got), seed=4) if red == "none" else 1.7

    def loss():
        return np.sum(P * F.cross_entropy(x, t, w, **kw))

    val, g = F.cross_entropy_with_grad(x, t, w, grad_output=P, **kw)
    np.testing.assert_allclose(val, got, rtol=1e-15)
    np.testing.assert_array_equal(g, F.cross_entropy_backward(P, x, t, w, **kw))
    check_grad(loss, x, g)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 2, 2), (6,)])
@pytest.mark.parametrize("use_w", [False, True])
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.25])
def test_cross_entropy_probability_targets(shape, use_w, red, eps):
    C = shape[0] if len(shape) == 1 else shape[1]
    cax = 0 if len(shape) == 1 else 1
    x = rand(*shape, seed=5)
    t = np.exp(rand(*shape, seed=6))
    t /= t.sum(cax, keepdims=True)
    w = np.random.default_rng(7).random(C) + 0.5 if use_w else None
    got = F.cross_entropy(x, t, w, reduction=red, label_smoothing=eps)
    np.testing.assert_allclose(got, ref_cross_entropy(x, t, w, reduction=red, eps=eps), rtol=1e-12)
    P = random_projection(np.shape(got), seed=8) if red == "none" else 0.9

    def loss():
        return np.sum(P * F.cross_entropy(x, t, w, reduction=red, label_smoothing=eps))

    check_grad(loss, x, F.cross_entropy_backward(P, x, t, w, reduction=red, label_smoothing=eps))


@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3)])
def test_cross_entropy_out_buffer(shape):
    x = rand(*shape, seed=20)
    t = targets((shape[0],) + shape[2:], shape[1], seed=21)
    want = F.cross_entropy_with_grad(x, t)
    out = np.full(shape, np.nan)
    loss, g = F.cross_entropy_with_grad(x, t, out=out)
    assert g is out and loss == want[0]
    np.testing.assert_array_equal(out, want[1])
    with pytest.raises(ValueError, match="'out'"):
        F.cross_entropy_with_grad(x, t, out=np.empty((1,) + shape))


def test_cross_entropy_course_f6_gradient_is_softmax_minus_onehot():
    x = rand(5, 4, seed=9)
    t = np.array([0, 3, 1, 1, 2])
    _, g = F.cross_entropy_with_grad(x, t, reduction="sum")
    p = np.exp(log_softmax(x, 1))
    np.testing.assert_allclose(g, p - np.eye(4)[t], atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_huge_logits_exact(dtype):
    x = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    per = F.cross_entropy(x, np.array([0, 1, 2]), reduction="none")
    assert per[0] == 0 and per[1] == 2e4
    np.testing.assert_allclose(per[2], np.log(3), rtol=1e-6)
    _, g = F.cross_entropy_with_grad(x, np.array([0, 1, 2]), reduction="sum")
    np.testing.assert_array_equal(g[:2], [[0, 0, 0], [1, -1, 0]])
    assert np.all(np.isfinite(g))


def test_cross_entropy_thread_count_does_not_change_bits():
    import oxinet

    x = rand(700, 3000, seed=30).astype(np.float32)
    t = targets(700, 3000, seed=31, ignore=-100)
    w = np.random.default_rng(32).random(3000).astype(np.float32)
    before = oxinet.get_num_threads()
    try:
        res = []
        for n in (1, 2, 3):
            oxinet.set_num_threads(n)
            res.append(F.cross_entropy_with_grad(x, t, w, label_smoothing=0.1))
    finally:
        oxinet.set_num_threads(before)
    for v, g in res[1:]:
        assert v == res[0][0]
        np.testing.assert_array_equal(g, res[0][1])


def test_cross_entropy_all_ignored_mean_is_nan_with_zero_grad():
    x = rand(3, 4, seed=10)
    t = np.full(3, -100)
    val, g = F.cross_entropy_with_grad(x, t)
    assert np.isnan(val) and np.all(g == 0)
    assert F.cross_entropy(x, t, reduction="sum") == 0


def test_cross_entropy_bad_inputs():
    x = rand(4, 3)
    with pytest.raises(ValueError, match="'target'"):
        F.cross_entropy(x, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="'target'"):
        F.cross_entropy(x, np.array([0, 1, -2, 0]))
    with pytest.raises(ValueError, match="'target'"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="'target'"):
        F.cross_entropy(x, np.array([0.0, 1.0, 2.0, 0.0]))  # float class indices
    with pytest.raises(TypeError, match="'target'"):
        F.cross_entropy(x, np.array([True, False, True, True]))
    with pytest.raises(TypeError, match="'input'"):
        F.cross_entropy(np.arange(12).reshape(4, 3), np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="'weight'"):
        F.cross_entropy(x, np.array([0, 1, 2, 0]), np.ones(4))
    with pytest.raises(ValueError, match="'reduction'"):
        F.cross_entropy(x, np.array([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="'label_smoothing'"):
        F.cross_entropy(x, np.array([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="'input'"):
        F.cross_entropy(np.float64(1.0), np.array(0))
    with pytest.raises(ValueError, match="'grad_output'"):
        F.cross_entropy_backward(np.ones(3), x, np.array([0, 1, 2, 0]), reduction="none")


# ----------------------------------------------------------------------- nll_loss


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3)])
def test_nll_loss_matches_cross_entropy_on_log_probs(red, shape):
    x = log_softmax(rand(*shape, seed=11), 1)
    tshape = (shape[0],) + shape[2:]
    t = targets(tshape, shape[1], seed=12, ignore=-100)
    w = np.array([0.5, 1.0, 2.0, 1.5])
    got = F.nll_loss(x, t, w, reduction=red)
    np.testing.assert_allclose(got, ref_cross_entropy(x, t, w, -100, red), rtol=1e-12)
    P = random_projection(np.shape(got), seed=13) if red == "none" else 1.3

    def loss():
        return np.sum(P * F.nll_loss(x, t, w, reduction=red))

    check_grad(loss, x, F.nll_loss_backward(P, x, t, w, reduction=red))
    with pytest.raises(ValueError, match="'target'"):
        F.nll_loss(x, np.full(tshape, 4))


# ----------------------------------------------- binary_cross_entropy_with_logits


def ref_bce(x, y, w=None, pw=None, reduction="mean"):
    """Course F2 (-[y log a + (1-y) log(1-a)], a = sigmoid) with PyTorch's weight/pos_weight."""
    a = 1 / (1 + np.exp(-x))
    pw = 1.0 if pw is None else pw
    w = 1.0 if w is None else w
    per = -w * (pw * y * np.log(a) + (1 - y) * np.log(1 - a))
    return {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("use_w,use_pw", [(False, False), (True, False), (False, True), (True, True)])
def test_bce_with_logits(red, use_w, use_pw):
    x = rand(4, 3, seed=14)
    y = np.random.default_rng(15).random((4, 3))
    w = np.random.default_rng(16).random((4, 1)) + 0.5 if use_w else None
    pw = np.array([0.5, 2.0, 3.0]) if use_pw else None
    got = F.binary_cross_entropy_with_logits(x, y, w, pos_weight=pw, reduction=red)
    np.testing.assert_allclose(got, ref_bce(x, y, w, pw, red), rtol=1e-12)
    P = random_projection(np.shape(got), seed=17) if red == "none" else 0.7

    def loss():
        return np.sum(P * F.binary_cross_entropy_with_logits(x, y, w, pos_weight=pw, reduction=red))

    g = F.binary_cross_entropy_with_logits_backward(P, x, y, w, pos_weight=pw, reduction=red)
    check_grad(loss, x, g)
    v2, g2 = F.binary_cross_entropy_with_logits_with_grad(x, y, w, pos_weight=pw, reduction=red, grad_output=P)
    np.testing.assert_array_equal(g2, g)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([-1e4, -50.0, 50.0, 1e4], np.float32)
    y = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    per = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(per, [0.0, 50.0, 50.0, 0.0], rtol=1e-6)
    _, g = F.binary_cross_entropy_with_logits_with_grad(x, y, reduction="sum")
    np.testing.assert_allclose(g, [0.0, -1.0, 1.0, 0.0], atol=1e-7)


def test_bce_bad_inputs():
    x = rand(4, 3)
    with pytest.raises(ValueError, match="'target'"):
        F.binary_cross_entropy_with_logits(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="'pos_weight'"):
        F.binary_cross_entropy_with_logits(x, np.zeros((4, 3)), pos_weight=np.ones(2))
    with pytest.raises(TypeError, match="'target'"):
        F.binary_cross_entropy_with_logits(x, np.zeros((4, 3), np.int64))
