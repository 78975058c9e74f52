"""Learning-rate schedules: values against the course formulas (F22) and PyTorch's rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn, optim
from oxinet.optim import lr_scheduler as S


def _opt(lr=0.2, groups=1):
    ps = [nn.Parameter(ox.zeros(1)) for _ in range(groups)]
    return optim.SGD([{"params": [p]} for p in ps], lr=lr)


def _lrs(sched, n):
    out = [sched.get_last_lr()[0]]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


def test_inverse_time_decay_course_table():
    # F22: alpha0 = 0.2, decay_rate = 1 -> 0.1, 0.067, 0.05, 0.04 in epochs 1..4
    lrs = _lrs(S.InverseTimeLR(_opt(0.2), decay_rate=1.0), 4)
    np.testing.assert_allclose(lrs, [0.2, 0.1, 0.2 / 3, 0.05, 0.04])


def test_inverse_time_staircase():
    lrs = _lrs(S.InverseTimeLR(_opt(1.0), decay_rate=1.0, staircase_every=2), 5)
    np.testing.assert_allclose(lrs, [1, 1, 0.5, 0.5, 1 / 3, 1 / 3])


def test_exponential_and_inverse_sqrt():
    np.testing.assert_allclose(_lrs(S.ExponentialLR(_opt(0.2), gamma=0.95), 3), [0.2 * 0.95**e for e in range(4)])
    np.testing.assert_allclose(_lrs(S.InverseSqrtLR(_opt(0.2), k=0.5), 3),
                               [0.2 * 0.5 / math.sqrt(e + 1) for e in range(4)])


def test_step_and_multistep():
    np.testing.assert_allclose(_lrs(S.StepLR(_opt(1.0), step_size=2, gamma=0.5), 5), [1, 1, 0.5, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(_lrs(S.MultiStepLR(_opt(1.0), milestones=[1, 3], gamma=0.1), 4),
                               [1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_annealing():
    lrs = _lrs(S.CosineAnnealingLR(_opt(1.0), T_max=4, eta_min=0.1), 4)
    np.testing.assert_allclose(lrs, [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)])
    assert lrs[-1] == pytest.approx(0.1)


def test_linear_warmups():
    np.testing.assert_allclose(_lrs(S.LinearLR(_opt(0.3), start_factor=0.5, total_iters=2), 3),
                               [0.15, 0.225, 0.3, 0.3])
    np.testing.assert_allclose(_lrs(S.LinearWarmup(_opt(1.0), warmup_steps=4), 5), [0.25, 0.5, 0.75, 1, 1, 1])


def test_sequential_warmup_then_cosine_and_lambda():
    opt = _opt(1.0)
    sched = S.SequentialLR(opt, [S.LinearWarmup(opt, 2), S.CosineAnnealingLR(opt, T_max=2)], milestones=[2])
    np.testing.assert_allclose(_lrs(sched, 4), [0.5, 1.0, 1.0, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(_lrs(S.LambdaLR(_opt(2.0), lambda e: 1 / (e + 1)), 2), [2, 1, 2 / 3])


def test_scheduler_sets_every_group_and_state_dict():
    opt = _opt(1.0, groups=2)
    opt.param_groups[1]["lr"] = 0.5
    sched = S.StepLR(opt, step_size=1, gamma=0.1)
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.05])
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 1
    sched2 = S.StepLR(_opt(1.0, groups=2), step_size=1, gamma=0.1)
    sched2.load_state_dict(sd)
    assert sched2.last_epoch == 1


def test_scheduler_step_with_explicit_epoch():
    sched = S.ExponentialLR(_opt(1.0), gamma=0.5)
    sched.step(3)
    assert sched.get_last_lr()[0] == 0.125


def test_reduce_lr_on_plateau_torch_rules():
    opt = _opt(1.0)
    sched = S.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    lrs = []
    for metric in [1.0, 0.9] + [0.95] * 14:
        sched.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    # improvement at 0.9, then bad epochs 1,2,3 -> reduce at the 3rd bad one (num_bad > patience)
    assert lrs[:5] == [1.0, 1.0, 1.0, 1.0, 0.5]
    # cooldown 1 epoch, then 3 more bad epochs -> 0.25, then the floor 0.2
    assert lrs[5:9] == [0.5, 0.5, 0.5, 0.25]
    assert min(lrs) == 0.2
    opt2 = _opt(1.0)
    s2 = S.ReduceLROnPlateau(opt2, mode="max", patience=0, threshold=0.1, threshold_mode="abs")
    s2.step(1.0)
    s2.step(1.05)  # not better by 0.1 -> bad epoch > patience 0 -> reduce
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="'factor'"):
        S.ReduceLROnPlateau(opt, factor=1.5)


def test_scheduler_bad_arguments():
    with pytest.raises(TypeError, match="not an Optimizer"):
        S.StepLR(object(), 1)
    with pytest.raises(ValueError, match="'step_size'"):
        S.StepLR(_opt(), 0)
    with pytest.raises(ValueError, match="'T_max'"):
        S.CosineAnnealingLR(_opt(), 0)


def test_more_closed_form_schedules():
    lrs = _lrs(S.CosineAnnealingWarmRestarts(_opt(1.0), T_0=2, T_mult=2), 7)
    # periods: epochs 0-1 (T=2), 2-5 (T=4), 6-13 (T=8)
    ref = [(1 + math.cos(math.pi * tc / ti)) / 2 for tc, ti in
           [(0, 2), (1, 2), (0, 4), (1, 4), (2, 4), (3, 4), (0, 8), (1, 8)]]
    np.testing.assert_allclose(lrs, ref, atol=1e-12)
    np.testing.assert_allclose(_lrs(S.CosineAnnealingWarmRestarts(_opt(1.0), T_0=3), 4)[3], 1.0)
    np.testing.assert_allclose(_lrs(S.PolynomialLR(_opt(1.0), total_iters=4, power=2.0), 5),
                               [1, 0.5625, 0.25, 0.0625, 0, 0])
    np.testing.assert_allclose(_lrs(S.ConstantLR(_opt(0.9), factor=0.5, total_iters=2), 3), [0.45, 0.45, 0.9, 0.9])
    noam = _lrs(S.NoamLR(_opt(1.0), d_model=512, warmup_steps=4), 6)
    ref = [512**-0.5 * min(s**-0.5, s * 4**-1.5) for s in range(1, 8)]
    np.testing.assert_allclose(noam, ref)
    assert np.argmax(noam) == 3  # the peak is at the end of the warmup
