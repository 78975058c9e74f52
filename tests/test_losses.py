"""Losses: NumPy references written from the definitions (PyTorch's semantics), gradient
checks, reductions and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.nn import functional as F

RNG = np.random.default_rng(0)


def T(a, grad=False):
    return ox.tensor(a, dtype=ox.float64, requires_grad=grad)


def log_softmax(z, axis=1):
    z = z - z.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


x = RNG.standard_normal((6, 4))
y = RNG.standard_normal((6, 4))
p = RNG.uniform(0.05, 0.95, (6, 4))
yb = (RNG.random((6, 4)) > 0.5).astype(np.float64)
cls = np.array([0, 3, 1, 1, 2, 3])
w = np.array([0.5, 1.0, 2.0, 1.5])


def red(v, reduction):
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_against_numpy(reduction):
    d = x - y
    a = np.abs(d)
    refs = {
        "mse": d**2,
        "l1": a,
        "huber": np.where(a < 0.7, 0.5 * d**2, 0.7 * (a - 0.35)),
        "smooth_l1": np.where(a < 0.5, 0.5 * d**2 / 0.5, a - 0.25),
    }
    got = {
        "mse": F.mse_loss(T(x), T(y), reduction=reduction),
        "l1": F.l1_loss(T(x), T(y), reduction=reduction),
        "huber": F.huber_loss(T(x), T(y), reduction=reduction, delta=0.7),
        "smooth_l1": F.smooth_l1_loss(T(x), T(y), reduction=reduction, beta=0.5),
    }
    for k in refs:
        np.testing.assert_allclose(got[k].numpy(), red(refs[k], reduction), rtol=1e-12, err_msg=k)


def test_huber_equals_delta_times_smooth_l1():
    np.testing.assert_allclose(F.huber_loss(T(x), T(y), delta=2.0).numpy(),
                               2.0 * F.smooth_l1_loss(T(x), T(y), beta=2.0).numpy(), rtol=1e-12)


def test_bce_losses_against_numpy():
    ref = -(yb * np.log(p) + (1 - yb) * np.log(1 - p))
    np.testing.assert_allclose(F.binary_cross_entropy(T(p), T(yb)).numpy(), ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(F.binary_cross_entropy(T(p), T(yb), weight=T(w), reduction="sum").numpy(),
                               (ref * w).sum(), rtol=1e-12)
    sig = sigmoid(x)
    ref_l = -(yb * np.log(sig) + (1 - yb) * np.log(1 - sig))
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(T(x), T(yb)).numpy(), ref_l.mean(), rtol=1e-12)
    pw = np.array([1.0, 2.0, 3.0, 0.5])
    ref_pw = -(pw * yb * np.log(sig) + (1 - yb) * np.log(1 - sig))
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(T(x), T(yb), pos_weight=T(pw), reduction="none").numpy(), ref_pw,
        rtol=1e-12)
    # stable for huge logits, and BCE clamps log at -100 like PyTorch
    big = F.binary_cross_entropy_with_logits(T(np.array([1000.0, -1000.0])), T(np.array([0.0, 1.0])),
                                             reduction="none").numpy()
    np.testing.assert_allclose(big, [1000.0, 1000.0])
    assert F.binary_cross_entropy(T(np.array([0.0])), T(np.array([1.0]))).item() == 100.0


def _nll_ref(logp, t, weight=None, ignore_index=-100, reduction="mean"):
    n, c = logp.shape
    weight = np.ones(c) if weight is None else weight
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    wt = weight[safe] * valid
    losses = -logp[np.arange(n), safe] * wt
    if reduction == "mean":
        return losses.sum() / wt.sum()
    return red(losses, reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("use_weight", [False, True])
def test_nll_and_cross_entropy_against_numpy(reduction, use_weight):
    wt = w if use_weight else None
    t = cls.copy()
    t[2] = -100  # ignored
    lp = log_softmax(x)
    ref = _nll_ref(lp, t, wt, reduction=reduction)
    np.testing.assert_allclose(F.nll_loss(T(lp), t, None if wt is None else T(wt), reduction=reduction).numpy(),
                               ref, rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(T(x), t, wt, reduction=reduction).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_label_smoothing_against_formula(use_weight):
    eps = 0.2
    wt = w if use_weight else np.ones(4)
    t = cls.copy()
    t[0] = 7
    lp = log_softmax(x)
    c = 4
    # per-sample loss with target (1 - eps) onehot + eps / C, weighted by class weights
    valid = t != 7
    safe = np.where(valid, t, 0)
    onehot = np.eye(c)[safe]
    q = (1 - eps) * onehot + eps / c
    per = -(q * wt * lp).sum(1) * valid
    ref = per.sum() / (wt[safe] * valid).sum()
    got = F.cross_entropy(T(x), t, w if use_weight else None, ignore_index=7, label_smoothing=eps)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_cross_entropy_probability_targets_and_spatial():
    q = RNG.dirichlet(np.ones(4), 6)
    ref = -(q * log_softmax(x)).sum(1).mean()
    np.testing.assert_allclose(F.cross_entropy(T(x), q).numpy(), ref, rtol=1e-12)
    xs = RNG.standard_normal((2, 3, 4, 5))
    ts = RNG.integers(0, 3, (2, 4, 5))
    lp = log_softmax(xs, 1).transpose(0, 2, 3, 1).reshape(-1, 3)
    np.testing.assert_allclose(F.cross_entropy(T(xs), ts).numpy(), _nll_ref(lp, ts.reshape(-1)), rtol=1e-12)
    assert F.cross_entropy(T(xs), ts, reduction="none").shape == (2, 4, 5)
    # unbatched
    np.testing.assert_allclose(F.cross_entropy(T(x[0]), np.array(2)).numpy(), -log_softmax(x[:1])[0, 2],
                               rtol=1e-12)


def test_cross_entropy_on_course_sanity_value():
    # I2DL: the initial loss of a C-class softmax with zero logits is log(C)
    assert F.cross_entropy(ox.zeros(5, 10), np.arange(5)).item() == pytest.approx(np.log(10), rel=1e-6)


def test_multi_margin_loss_against_numpy():
    def ref(xx, t, p_, margin, weight):
        n, c = xx.shape
        out = np.zeros(n)
        for i in range(n):
            for j in range(c):
                if j != t[i]:
                    v = max(0.0, margin - xx[i, t[i]] + xx[i, j]) ** p_
                    out[i] += v * (weight[t[i]] if weight is not None else 1)
        return out / c

    for p_, weight in ((1, None), (2, w)):
        got = F.multi_margin_loss(T(x), cls, p=p_, margin=0.8, weight=weight, reduction="none")
        np.testing.assert_allclose(got.numpy(), ref(x, cls, p_, 0.8, weight), rtol=1e-12)


def test_triplet_cosine_kl_focal_dice_against_numpy():
    a, pz, nz = x, y, RNG.standard_normal((6, 4))

    def dist(u, v):
        return np.sqrt(((u - v + 1e-6) ** 2).sum(-1))

    ref = np.maximum(dist(a, pz) - dist(a, nz) + 1.0, 0).mean()
    np.testing.assert_allclose(F.triplet_margin_loss(T(a), T(pz), T(nz)).numpy(), ref, rtol=1e-12)
    ref_swap = np.maximum(dist(a, pz) - np.minimum(dist(a, nz), dist(pz, nz)) + 1.0, 0).mean()
    np.testing.assert_allclose(F.triplet_margin_loss(T(a), T(pz), T(nz), swap=True).numpy(), ref_swap, rtol=1e-12)

    tgt = np.array([1, -1, 1, -1, -1, 1])
    cos = (x * y).sum(1) / np.sqrt(((x * x).sum(1) + 1e-12) * ((y * y).sum(1) + 1e-12))
    ref_c = np.where(tgt == 1, 1 - cos, np.maximum(cos - 0.1, 0)).mean()
    np.testing.assert_allclose(F.cosine_embedding_loss(T(x), T(y), tgt, margin=0.1).numpy(), ref_c, rtol=1e-12)

    q = RNG.dirichlet(np.ones(4), 6)
    q[0, 1] = 0.0
    lp = log_softmax(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        pointwise = np.where(q > 0, q * (np.log(q) - lp), 0.0)
    np.testing.assert_allclose(F.kl_div(T(lp), T(q), reduction="batchmean").numpy(), pointwise.sum() / 6, rtol=1e-12)
    np.testing.assert_allclose(F.kl_div(T(lp), T(q)).numpy(), pointwise.mean(), rtol=1e-12)
    lq = np.log(np.clip(q, 1e-300, None))
    np.testing.assert_allclose(F.kl_div(T(lp), T(lq), reduction="sum", log_target=True).numpy(),
                               (np.exp(lq) * (lq - lp)).sum(), rtol=1e-10)

    pr = sigmoid(x)
    ce = -(yb * np.log(pr) + (1 - yb) * np.log(1 - pr))
    pt = pr * yb + (1 - pr) * (1 - yb)
    ref_f = (0.25 * yb + 0.75 * (1 - yb)) * ce * (1 - pt) ** 2
    np.testing.assert_allclose(F.sigmoid_focal_loss(T(x), T(yb)).numpy(), ref_f, rtol=1e-10)
    np.testing.assert_allclose(nn.FocalLoss()(T(x), T(yb)).numpy(), ref_f.mean(), rtol=1e-10)

    inter = (p * yb).sum(1)
    ref_d = 1 - (2 * inter + 1) / (p.sum(1) + yb.sum(1) + 1)
    np.testing.assert_allclose(F.dice_loss(T(p), T(yb)).numpy(), ref_d.mean(), rtol=1e-12)


LOSS_CASES = [
    ("MSELoss", lambda: nn.MSELoss(), lambda: (T(x, True), T(y))),
    ("L1Loss", lambda: nn.L1Loss(reduction="sum"), lambda: (T(x, True), T(y))),
    ("HuberLoss", lambda: nn.HuberLoss(delta=0.5), lambda: (T(x, True), T(y))),
    ("SmoothL1Loss", lambda: nn.SmoothL1Loss(beta=0.5), lambda: (T(x, True), T(y))),
    ("BCELoss", lambda: nn.BCELoss(weight=w), lambda: (T(p, True), T(yb))),
    ("BCEWithLogitsLoss", lambda: nn.BCEWithLogitsLoss(pos_weight=np.array([1.0, 2.0, 0.5, 3.0])),
     lambda: (T(x, True), T(yb))),
    ("NLLLoss", lambda: nn.NLLLoss(weight=w), lambda: (T(log_softmax(x), True), cls)),
    ("CrossEntropyLoss", lambda: nn.CrossEntropyLoss(), lambda: (T(x, True), cls)),
    ("CrossEntropyLoss_all_options", lambda: nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1),
     lambda: (T(x, True), cls)),
    ("CrossEntropyLoss_probs", lambda: nn.CrossEntropyLoss(label_smoothing=0.05),
     lambda: (T(x, True), RNG.dirichlet(np.ones(4), 6))),
    ("CrossEntropyLoss_spatial", lambda: nn.CrossEntropyLoss(), lambda: (T(RNG.standard_normal((2, 3, 2, 2)), True),
                                                                         RNG.integers(0, 3, (2, 2, 2)))),
    ("MultiMarginLoss", lambda: nn.MultiMarginLoss(), lambda: (T(x, True), cls)),
    ("MultiMarginLoss_p2_weight", lambda: nn.MultiMarginLoss(p=2, margin=2.0, weight=w), lambda: (T(x, True), cls)),
    ("TripletMarginLoss", lambda: nn.TripletMarginLoss(margin=3.0),
     lambda: (T(x, True), T(y, True), T(RNG.standard_normal((6, 4)), True))),
    ("TripletMarginLoss_p1_swap", lambda: nn.TripletMarginLoss(margin=3.0, p=1, swap=True),
     lambda: (T(x, True), T(y, True), T(RNG.standard_normal((6, 4)), True))),
    ("CosineEmbeddingLoss", lambda: nn.CosineEmbeddingLoss(margin=-0.5),
     lambda: (T(x, True), T(y, True), np.array([1, -1, 1, -1, -1, 1]))),
    ("MarginRankingLoss", lambda: nn.MarginRankingLoss(margin=5.0),
     lambda: (T(x[:, 0], True), T(y[:, 0], True), T(np.array([1.0, -1, 1, 1, -1, -1])))),
    ("HingeEmbeddingLoss", lambda: nn.HingeEmbeddingLoss(margin=5.0),
     lambda: (T(x, True), np.where(yb > 0, 1, -1))),
    ("KLDivLoss", lambda: nn.KLDivLoss(reduction="batchmean"),
     lambda: (T(log_softmax(x), True), T(RNG.dirichlet(np.ones(4), 6), True))),
    ("KLDivLoss_log_target", lambda: nn.KLDivLoss(reduction="sum", log_target=True),
     lambda: (T(log_softmax(x), True), T(log_softmax(y), True))),
    ("FocalLoss", lambda: nn.FocalLoss(), lambda: (T(x, True), T(yb))),
    ("poisson_nll_loss", lambda: (lambda a, b: F.poisson_nll_loss(a, b, full=True)),
     lambda: (T(x, True), T(np.abs(y) * 3))),
    ("poisson_nll_loss_rate", lambda: (lambda a, b: F.poisson_nll_loss(a, b, log_input=False)),
     lambda: (T(p, True), T(np.abs(y)))),
    ("DiceLoss", lambda: nn.DiceLoss(), lambda: (T(p, True), T(yb))),
]


@pytest.mark.parametrize("name,make,args", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_gradcheck(name, make, args):
    loss = make()
    inputs = args()
    assert ox.gradcheck(loss, list(inputs))


def test_loss_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="'target' has shape"):
        F.mse_loss(ox.zeros(3), ox.zeros(4))
    with pytest.raises(ValueError, match="'reduction'"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="'target' must hold integer"):
        F.nll_loss(ox.zeros(3, 4), np.zeros(3))
    with pytest.raises(ValueError, match="'target' has shape"):
        F.cross_entropy(ox.zeros(3, 4), np.zeros(4, np.int64))
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(ox.zeros(3, 4), np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="'weight' has shape"):
        F.cross_entropy(ox.zeros(3, 4), np.array([0, 1, 1]), weight=np.ones(3))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(ox.tensor([1.5]), ox.tensor([1.0]))
    with pytest.raises(ValueError, match="'label_smoothing'"):
        F.cross_entropy(ox.zeros(3, 4), np.array([0, 1, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="'p'"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="'delta'"):
        F.huber_loss(ox.zeros(2), ox.zeros(2), delta=0)


def test_cross_entropy_all_ignored_gives_nan_like_torch():
    with np.errstate(invalid="ignore"):
        v = F.cross_entropy(ox.zeros(2, 3), np.array([-100, -100])).item()
    assert np.isnan(v)


def test_torch_positional_order_and_legacy_flags():
    # torch order: (input, target, weight, size_average, ignore_index, reduce, reduction, ...)
    t = np.array([0, 1, 2, 3, 0, 1])
    a = F.cross_entropy(T(x), t, None, None, 1, None, "sum").item()
    b = F.cross_entropy(T(x), t, ignore_index=1, reduction="sum").item()
    assert a == b
    assert F.mse_loss(T(x), T(y), size_average=False).item() == pytest.approx(((x - y) ** 2).sum())
    assert F.l1_loss(T(x), T(y), reduce=False).shape == (6, 4)


def test_poisson_nll_against_numpy():
    yy = np.abs(y) * 3
    st = np.where(yy > 1, yy * np.log(np.maximum(yy, 1)) - yy + 0.5 * np.log(2 * np.pi * np.maximum(yy, 1)), 0)
    ref = (np.exp(x) - yy * x + st).mean()
    np.testing.assert_allclose(F.poisson_nll_loss(T(x), T(yy), full=True).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("shape", [(6, 4), (4,), (2, 4, 3, 2)])
@pytest.mark.parametrize("opts", [{}, {"weight": w}, {"ignore_index": 1}, {"label_smoothing": 0.3},
                                  {"weight": w, "ignore_index": 2, "label_smoothing": 0.1},
                                  {"reduction": "none", "weight": w, "label_smoothing": 0.2},
                                  {"reduction": "sum", "ignore_index": 0}])
@pytest.mark.parametrize("probs", [False, True])
def test_fused_cross_entropy_matches_composite_reference(shape, opts, probs):
    from oxinet.nn.functional import _cross_entropy_composite

    rng = np.random.default_rng(1)
    logits = rng.standard_normal(shape)
    if probs:
        if "ignore_index" in opts:
            return
        tgt = np.moveaxis(rng.dirichlet(np.ones(4), shape[:1] + shape[2:] if len(shape) > 1 else ()), -1,
                          1 if len(shape) > 1 else 0)
    else:
        tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
        tgt = rng.integers(0, 4, tshape)
    a, b = T(logits, True), T(logits, True)
    fused = F.cross_entropy(a, tgt, **opts)
    ref = _cross_entropy_composite(b, tgt, **opts)
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), rtol=1e-12, atol=1e-14)
    g = np.random.default_rng(2).standard_normal(fused.shape)
    fused.backward(g)
    ref.backward(g)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_fused_cross_entropy_keeps_float32():
    x = ox.randn(5, 3, requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 1, 2, 1, 0]), label_smoothing=0.1)
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32
