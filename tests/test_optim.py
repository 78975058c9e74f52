"""Optimizers against hand-computed steps from the course formulas (F18-F22), param groups,
state_dict, L-BFGS, gradient clipping and penalties."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn, optim
from oxinet.nn.utils import clip_grad_norm_, clip_grad_value_, l1_penalty, l2_penalty

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.4]), np.array([-1.0, 0.2, 0.7]),
         np.array([0.0, 0.0, 1.0])]
P0 = np.array([1.0, -2.0, 0.5])


def run(opt_cls, steps=4, **kw):
    p = nn.Parameter(ox.tensor(P0.copy(), dtype=ox.float64))
    opt = opt_cls([p], **kw)
    out = []
    for g in GRADS[:steps]:
        p.grad = ox.tensor(g, dtype=ox.float64)
        opt.step()
        out.append(p.numpy().copy())
    return out


def test_sgd_plain_and_weight_decay():
    got = run(optim.SGD, lr=0.1, weight_decay=0.01)
    th = P0.copy()
    for g, p in zip(GRADS, got):
        th = th - 0.1 * (g + 0.01 * th)
        np.testing.assert_allclose(p, th, rtol=1e-14)


def test_sgd_momentum_torch_form_equals_i2dl_velocity_form():
    got = run(optim.SGD, lr=0.1, momentum=0.9)
    # I2DL F19: v' = b v - a g; theta' = theta + v' (v0 = 0)
    th, v = P0.copy(), np.zeros(3)
    for g, p in zip(GRADS, got):
        v = 0.9 * v - 0.1 * g
        th = th + v
        np.testing.assert_allclose(p, th, rtol=1e-14)


def test_sgd_momentum_with_dampening_torch_rule():
    got = run(optim.SGD, lr=0.1, momentum=0.8, dampening=0.3)
    th, buf = P0.copy(), None
    for g, p in zip(GRADS, got):
        buf = g.copy() if buf is None else 0.8 * buf + 0.7 * g
        th = th - 0.1 * buf
        np.testing.assert_allclose(p, th, rtol=1e-14)


def test_sgd_ewma_course_form():
    got = run(optim.SGD, lr=0.1, momentum=0.9, ewma=True)
    # Ng F19: V = b V + (1 - b) dW; W -= a V
    th, v = P0.copy(), np.zeros(3)
    for g, p in zip(GRADS, got):
        v = 0.9 * v + 0.1 * g
        th = th - 0.1 * v
        np.testing.assert_allclose(p, th, rtol=1e-14)


def test_sgd_nesterov_torch_rule():
    got = run(optim.SGD, lr=0.05, momentum=0.9, nesterov=True)
    th, buf = P0.copy(), None
    for g, p in zip(GRADS, got):
        buf = g.copy() if buf is None else 0.9 * buf + g
        th = th - 0.05 * (g + 0.9 * buf)
        np.testing.assert_allclose(p, th, rtol=1e-14)


def test_sgd_nesterov_matches_i2dl_lookahead_form_on_a_quadratic():
    # f(theta) = 0.5 theta^T A theta; the gradient is evaluated where the optimizer puts theta.
    A = np.diag([1.0, 3.0, 0.5])
    p = nn.Parameter(ox.tensor(P0.copy(), dtype=ox.float64))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(5):
        p.grad = ox.tensor(A @ p.numpy(), dtype=ox.float64)
        opt.step()
    # I2DL F19 in lookahead variables: phi = theta + b v; the torch iterate is phi
    th, v = P0.copy(), np.zeros(3)
    for _ in range(5):
        v_new = 0.9 * v - 0.1 * A @ (th + 0.9 * v)
        th = th + v_new
        v = v_new
    np.testing.assert_allclose(p.numpy(), th + 0.9 * v, rtol=1e-12)


def test_rmsprop_i2dl_formula():
    got = run(optim.RMSprop, lr=0.01, alpha=0.9, eps=1e-8)
    th, s = P0.copy(), np.zeros(3)
    for g, p in zip(GRADS, got):
        s = 0.9 * s + 0.1 * g * g
        th = th - 0.01 * g / (np.sqrt(s) + 1e-8)
        np.testing.assert_allclose(p, th, rtol=1e-13)


def test_rmsprop_centered_momentum_torch_rule():
    got = run(optim.RMSprop, lr=0.01, alpha=0.9, momentum=0.5, centered=True)
    th, s, ga, buf = P0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for g, p in zip(GRADS, got):
        s = 0.9 * s + 0.1 * g * g
        ga = 0.9 * ga + 0.1 * g
        buf = 0.5 * buf + g / (np.sqrt(s - ga * ga) + 1e-8)
        th = th - 0.01 * buf
        np.testing.assert_allclose(p, th, rtol=1e-12)


def test_adam_course_formula_with_bias_correction():
    got = run(optim.Adam, lr=0.01)
    th, m, v = P0.copy(), np.zeros(3), np.zeros(3)
    for t, (g, p) in enumerate(zip(GRADS, got), start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mh = m / (1 - 0.9**t)
        vh = v / (1 - 0.999**t)
        th = th - 0.01 * mh / (np.sqrt(vh) + 1e-8)
        np.testing.assert_allclose(p, th, rtol=1e-12)


def test_adam_defaults():
    opt = optim.Adam([nn.Parameter(ox.zeros(1))])
    g = opt.param_groups[0]
    assert g["lr"] == 1e-3 and g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8


def test_adam_amsgrad_and_l2_weight_decay():
    got = run(optim.Adam, lr=0.01, weight_decay=0.1, amsgrad=True)
    th, m, v, vmax = P0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for t, (g, p) in enumerate(zip(GRADS, got), start=1):
        g = g + 0.1 * th
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        vmax = np.maximum(vmax, v)
        th = th - 0.01 / (1 - 0.9**t) * m / (np.sqrt(vmax) / math.sqrt(1 - 0.999**t) + 1e-8)
        np.testing.assert_allclose(p, th, rtol=1e-12)


def test_adamw_decoupled_decay():
    got = run(optim.AdamW, lr=0.01, weight_decay=0.1)
    th, m, v = P0.copy(), np.zeros(3), np.zeros(3)
    for t, (g, p) in enumerate(zip(GRADS, got), start=1):
        th = th * (1 - 0.01 * 0.1)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        th = th - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(p, th, rtol=1e-12)
    assert optim.AdamW([nn.Parameter(ox.zeros(1))]).param_groups[0]["weight_decay"] == 0.01


def test_adagrad_formula():
    got = run(optim.Adagrad, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)
    th, s = P0.copy(), np.full(3, 0.1)
    for t, (g, p) in enumerate(zip(GRADS, got), start=1):
        s = s + g * g
        th = th - 0.1 / (1 + (t - 1) * 0.01) * g / (np.sqrt(s) + 1e-10)
        np.testing.assert_allclose(p, th, rtol=1e-13)


def test_maximize_flips_the_step():
    a = run(optim.SGD, lr=0.1, maximize=True)
    np.testing.assert_allclose(a[0], P0 + 0.1 * GRADS[0])


def test_params_without_grad_are_skipped_and_float32_kept():
    p = nn.Parameter(ox.ones(3))
    q = nn.Parameter(ox.ones(3))
    opt = optim.Adam([p, q], lr=0.1)
    p.grad = ox.ones(3)
    opt.step()
    assert np.all(q.numpy() == 1) and p.dtype == np.float32 and np.all(p.numpy() < 1)


def test_param_groups_have_their_own_hyperparameters():
    a, b = nn.Parameter(ox.ones(2)), nn.Parameter(ox.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1, momentum=0.0)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 1.0
    a.grad, b.grad = ox.ones(2), ox.ones(2)
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_allclose(b.numpy(), 0.0)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    opt.zero_grad()
    assert a.grad is None


def test_optimizer_argument_errors():
    p = nn.Parameter(ox.ones(1))
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="iterable"):
        optim.Adam(p)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([ox.ones(1, requires_grad=True) * 2], lr=0.1)


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.01)),
                                    (optim.RMSprop, dict(lr=0.01, momentum=0.3, centered=True)),
                                    (optim.Adagrad, dict(lr=0.1)), (optim.AdamW, dict(lr=0.01))])
def test_optimizer_state_dict_round_trip(cls, kw):
    def make():
        p = nn.Parameter(ox.tensor(P0.copy(), dtype=ox.float64))
        return p, cls([p], **kw)

    p1, o1 = make()
    for g in GRADS[:2]:
        p1.grad = ox.tensor(g, dtype=ox.float64)
        o1.step()
    sd = copy.deepcopy(o1.state_dict())
    p2, o2 = make()
    p2.numpy()[...] = p1.numpy()
    o2.load_state_dict(sd)
    for g in GRADS[2:]:
        for p, o in ((p1, o1), (p2, o2)):
            p.grad = ox.tensor(g, dtype=ox.float64)
            o.step()
    np.testing.assert_array_equal(p1.numpy(), p2.numpy())
    with pytest.raises(ValueError, match="parameter groups"):
        o2.load_state_dict({"state": {}, "param_groups": []})


def _rosenbrock_closure(p, opt):
    def closure():
        opt.zero_grad()
        x, y = p[0], p[1]
        loss = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        loss.backward()
        return loss

    return closure


def test_lbfgs_strong_wolfe_solves_rosenbrock():
    p = nn.Parameter(ox.tensor([-1.5, 2.0], dtype=ox.float64))
    opt = optim.LBFGS([p], lr=1.0, max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                      tolerance_change=1e-14)
    opt.step(_rosenbrock_closure(p, opt))
    np.testing.assert_allclose(p.numpy(), [1.0, 1.0], atol=1e-5)


def test_lbfgs_fixed_step_on_a_quadratic_least_squares():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 5))
    b = rng.standard_normal(20)
    w = nn.Parameter(ox.zeros(5, dtype=ox.float64))
    opt = optim.LBFGS([w], lr=0.5, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        r = ox.tensor(A, dtype=ox.float64) @ w - ox.tensor(b, dtype=ox.float64)
        loss = 0.5 * (r * r).mean()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    np.testing.assert_allclose(w.numpy(), np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-6)
    with pytest.raises(ValueError, match="closure"):
        opt.step(None)


def test_clip_grad_norm_and_value():
    a, b = nn.Parameter(ox.zeros(3)), nn.Parameter(ox.zeros(2))
    a.grad, b.grad = ox.tensor([3.0, 0.0, 0.0]), ox.tensor([0.0, 4.0])
    total = clip_grad_norm_([a, b], max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [0, 0.8], rtol=1e-5)
    total = clip_grad_norm_([a, b], max_norm=10.0)  # no change below the threshold
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0, 0], rtol=1e-5)
    b.grad = ox.tensor([-5.0, 0.5])
    clip_grad_value_([a, b], 1.0)
    np.testing.assert_allclose(b.grad.numpy(), [-1.0, 0.5])
    a.grad = ox.tensor([np.inf, 0, 0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([a, b], 1.0, norm_type=math.inf).item() == math.inf


def test_l1_l2_penalties():
    lin = nn.Linear(3, 2)
    w = lin.weight.numpy()
    pen = l2_penalty(lin.named_parameters(), lam=0.1)
    assert pen.item() == pytest.approx(0.05 * (w**2).sum(), rel=1e-6)
    pen.backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), 0.1 * w, rtol=1e-6)
    assert lin.bias.grad is None  # biases are skipped with named_parameters
    assert l1_penalty([lin.weight], 0.5).item() == pytest.approx(0.5 * np.abs(w).sum(), rel=1e-6)


def test_newton_solves_a_quadratic_in_one_step():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((4, 4))
    A = M @ M.T + 4 * np.eye(4)
    b = rng.standard_normal(4)
    w = nn.Parameter(ox.zeros(4, dtype=ox.float64))
    opt = optim.Newton([w])
    At, bt = ox.tensor(A, dtype=ox.float64), ox.tensor(b, dtype=ox.float64)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (w @ (At @ w)) - bt @ w
        loss.backward()
        return loss

    opt.step(closure)
    np.testing.assert_allclose(w.numpy(), np.linalg.solve(A, b), rtol=1e-6)


def test_newton_on_rosenbrock():
    p = nn.Parameter(ox.tensor([-1.2, 1.0], dtype=ox.float64))
    opt = optim.Newton([p])
    closure = _rosenbrock_closure(p, opt)
    for _ in range(30):
        opt.step(closure)
    np.testing.assert_allclose(p.numpy(), [1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(diagonal=False), dict(lambda_=0.0)])
def test_levenberg_marquardt_fits_an_exponential(kw):
    x = np.linspace(0, 1, 20)
    y = 2.0 * np.exp(-1.5 * x)
    ab = nn.Parameter(ox.tensor([1.0, 0.0], dtype=ox.float64))
    opt = optim.LevenbergMarquardt([ab], **kw)
    xt, yt = ox.tensor(x, dtype=ox.float64), ox.tensor(y, dtype=ox.float64)

    def residual():
        return ab[0] * (ab[1] * xt).exp() - yt

    losses = [opt.step(residual) for _ in range(30)]
    np.testing.assert_allclose(ab.numpy(), [2.0, -1.5], atol=1e-6)
    assert losses[-1] < 1e-12 < losses[0]
