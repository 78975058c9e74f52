"""CTC loss vs a brute-force sum over every alignment (all C^T paths, collapsed by removing
repeats then blanks), reductions, blank index, zero_infinity, target formats, and float64
gradient checks (through log_softmax and directly on log-probabilities)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn
from oxinet.nn import functional as F


def _T(a, requires_grad=False):
    """A Tensor keeping the array's float dtype (ox.tensor would cast to the default float32)."""
    a = np.asarray(a)
    return ox.tensor(a, dtype=a.dtype if a.dtype.kind == "f" else None, requires_grad=requires_grad)


def _collapse(path, blank):
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def brute_nll(lp, target, blank):
    """-log sum over all alignments of lp (T, C) that collapse to target."""
    T, C = lp.shape
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        if _collapse(path, blank) == list(target):
            total += np.exp(sum(lp[t, p] for t, p in enumerate(path)))
    return -np.log(total) if total > 0 else np.inf


def _logsoftmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _case(seed=0, T=5, N=3, C=4):
    rng = np.random.default_rng(seed)
    lp = _logsoftmax(rng.standard_normal((T, N, C)))
    targets = np.array([[1, 2, 0], [3, 3, 0], [2, 0, 0]])[:N]
    tl = np.array([2, 2, 1])[:N]
    il = np.array([5, 4, 3])[:N]
    return lp, targets, il, tl


def test_ctc_matches_brute_force_per_sample():
    lp, targets, il, tl = _case()
    out = F.ctc_loss(_T(lp), targets, il, tl, reduction="none").numpy()
    for n in range(3):
        ref = brute_nll(lp[:il[n], n], targets[n, :tl[n]], 0)
        assert out[n] == pytest.approx(ref, rel=1e-10)


def test_ctc_blank_index_and_reductions():
    rng = np.random.default_rng(1)
    lp = _logsoftmax(rng.standard_normal((4, 2, 3)))
    targets = np.array([[0, 1], [1, 1]])  # blank = 2
    il, tl = np.array([4, 4]), np.array([2, 1])
    refs = np.array([brute_nll(lp[:, n], targets[n, :tl[n]], 2) for n in range(2)])
    t = _T(lp)
    none = F.ctc_loss(t, targets, il, tl, blank=2, reduction="none").numpy()
    np.testing.assert_allclose(none, refs, rtol=1e-10)
    assert F.ctc_loss(t, targets, il, tl, blank=2, reduction="sum").item() == pytest.approx(refs.sum(), rel=1e-10)
    assert F.ctc_loss(t, targets, il, tl, blank=2).item() == pytest.approx((refs / tl).mean(), rel=1e-10)
    # 1-D concatenated targets give the same losses
    flat = np.concatenate([targets[0, :2], targets[1, :1]])
    np.testing.assert_allclose(F.ctc_loss(t, flat, il, tl, blank=2, reduction="none").numpy(), refs, rtol=1e-12)
    assert nn.CTCLoss(blank=2, reduction="sum")(t, targets, il, tl).item() == pytest.approx(refs.sum(), rel=1e-10)


def test_ctc_empty_target_and_repeated_labels():
    rng = np.random.default_rng(2)
    lp = _logsoftmax(rng.standard_normal((4, 1, 3)))
    # empty target: only the all-blank path
    out = F.ctc_loss(_T(lp), np.zeros((1, 1), np.int64), [4], [0], reduction="none").numpy()
    assert out[0] == pytest.approx(-lp[:, 0, 0].sum(), rel=1e-12)
    # "1 1" needs a blank in between: T = 3 has exactly one alignment (1, 0, 1)
    lp3 = _logsoftmax(rng.standard_normal((3, 1, 2)))
    out = F.ctc_loss(_T(lp3), np.array([[1, 1]]), [3], [2], reduction="none").numpy()
    assert out[0] == pytest.approx(-(lp3[0, 0, 1] + lp3[1, 0, 0] + lp3[2, 0, 1]), rel=1e-12)


def test_ctc_impossible_alignment_and_zero_infinity():
    lp = _logsoftmax(np.random.default_rng(3).standard_normal((2, 1, 3)))
    tgt = np.array([[1, 1]])  # needs T >= 3
    x = _T(lp, requires_grad=True)
    out = F.ctc_loss(x, tgt, [2], [2], reduction="sum")
    assert np.isinf(out.item())
    x2 = _T(lp, requires_grad=True)
    out2 = F.ctc_loss(x2, tgt, [2], [2], reduction="sum", zero_infinity=True)
    assert out2.item() == 0.0
    out2.backward()
    assert np.all(x2.grad.numpy() == 0)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_gradcheck_through_log_softmax(reduction):
    rng = np.random.default_rng(4)
    logits = _T(rng.standard_normal((5, 3, 4)), requires_grad=True)
    _, targets, il, tl = _case()
    assert ox.gradcheck(lambda z: F.ctc_loss(z.log_softmax(2), targets, il, tl, reduction=reduction), (logits,))


def test_ctc_gradcheck_direct_log_probs_and_unbatched():
    lp, targets, il, tl = _case(5)
    x = _T(lp, requires_grad=True)
    assert ox.gradcheck(lambda z: F.ctc_loss(z, targets, il, tl), (x,))
    u = _T(lp[:, 0], requires_grad=True)
    out = F.ctc_loss(u, targets[0, :2], 5, 2, reduction="none")
    assert out.shape == () and out.item() == pytest.approx(brute_nll(lp[:, 0], [1, 2], 0), rel=1e-10)
    assert ox.gradcheck(lambda z: F.ctc_loss(z, targets[0, :2], 5, 2), (u,))


def test_ctc_float32_and_bad_inputs():
    lp, targets, il, tl = _case()
    out = F.ctc_loss(_T(lp.astype(np.float32)), targets, il, tl)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="'input_lengths'"):
        F.ctc_loss(_T(lp), targets, [9, 1, 1], tl)
    with pytest.raises(ValueError, match="'targets'"):
        F.ctc_loss(_T(lp), np.array([[0, 1, 0], [1, 1, 0], [1, 0, 0]]), il, tl)
    with pytest.raises(TypeError, match="'targets'"):
        F.ctc_loss(_T(lp), targets.astype(float), il, tl)
    with pytest.raises(ValueError, match="'reduction'"):
        F.ctc_loss(_T(lp), targets, il, tl, reduction="avg")
