"""Gradient checks (float64, two-sided differences, course F16) for every differentiable
Tensor op, plus forward values against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet as ox
from helpers import check_grad, random_projection


def _inputs(shapes, seed=0, positive=False, away_from_zero=False):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        a = rng.standard_normal(s)
        if positive:
            a = np.abs(a) + 0.5
        if away_from_zero:
            a = np.sign(a) * (np.abs(a) + 0.2)
        out.append(ox.tensor(a, dtype=ox.float64, requires_grad=True))
    return out


# (id, function of tensors, input shapes, kwargs for _inputs)
CASES = [
    ("add", lambda a, b: a + b, [(3, 4), (3, 4)], {}),
    ("add_broadcast", lambda a, b: a + b, [(3, 4), (4,)], {}),
    ("add_broadcast_keepdim", lambda a, b: a + b, [(2, 3, 4), (2, 1, 4)], {}),
    ("radd_scalar", lambda a: 2.5 + a, [(3,)], {}),
    ("sub", lambda a, b: a - b, [(3, 4), (1, 4)], {}),
    ("rsub", lambda a: 1.0 - a, [(3, 4)], {}),
    ("rsub_array", lambda a: np.ones((2, 3, 4)) - a, [(3, 4)], {}),
    ("mul", lambda a, b: a * b, [(3, 4), (3, 1)], {}),
    ("mul_self", lambda a: a * a * a, [(3, 4)], {}),
    ("rmul", lambda a: 3.0 * a, [(2, 2)], {}),
    ("div", lambda a, b: a / b, [(3, 4), (4,)], {"positive": True}),
    ("rdiv", lambda a: 2.0 / a, [(3, 4)], {"positive": True}),
    ("pow_scalar", lambda a: a ** 3, [(3, 4)], {}),
    ("pow_frac", lambda a: a ** 0.5, [(3, 4)], {"positive": True}),
    ("pow_tensor", lambda a, b: a ** b, [(3, 4), (3, 4)], {"positive": True}),
    ("rpow", lambda a: 2.0 ** a, [(3, 4)], {}),
    ("neg", lambda a: -a, [(3,)], {}),
    ("abs", lambda a: a.abs(), [(3, 4)], {"away_from_zero": True}),
    ("matmul_2d", lambda a, b: a @ b, [(3, 4), (4, 5)], {}),
    ("matmul_batched", lambda a, b: a @ b, [(2, 3, 4), (2, 4, 5)], {}),
    ("matmul_broadcast", lambda a, b: a @ b, [(2, 3, 4), (4, 5)], {}),
    ("matmul_broadcast_b", lambda a, b: a @ b, [(3, 4), (2, 4, 5)], {}),
    ("matmul_vec_mat", lambda a, b: a @ b, [(4,), (4, 5)], {}),
    ("matmul_mat_vec", lambda a, b: a @ b, [(3, 4), (4,)], {}),
    ("matmul_dot", lambda a, b: a @ b, [(4,), (4,)], {}),
    ("rmatmul_array", lambda a: np.ones((2, 3)) @ a, [(3, 4)], {}),
    ("exp", lambda a: a.exp(), [(3, 4)], {}),
    ("log", lambda a: a.log(), [(3, 4)], {"positive": True}),
    ("log1p", lambda a: a.log1p(), [(3, 4)], {"positive": True}),
    ("sqrt", lambda a: a.sqrt(), [(3, 4)], {"positive": True}),
    ("rsqrt", lambda a: a.rsqrt(), [(3, 4)], {"positive": True}),
    ("sin", lambda a: a.sin(), [(5,)], {}),
    ("cos", lambda a: a.cos(), [(5,)], {}),
    ("tanh", lambda a: a.tanh(), [(3, 4)], {}),
    ("sigmoid", lambda a: a.sigmoid(), [(3, 4)], {}),
    ("relu", lambda a: a.relu(), [(3, 4)], {"away_from_zero": True}),
    ("clamp", lambda a: a.clamp(-0.5, 0.7), [(4, 5)], {"seed": 3}),
    ("clamp_min", lambda a: a.clamp(min=0.1), [(4, 5)], {}),
    ("maximum", lambda a, b: ox.maximum(a, b), [(3, 4), (4,)], {}),
    ("minimum", lambda a, b: ox.minimum(a, b), [(3, 4), (3, 4)], {}),
    ("maximum_scalar", lambda a: ox.maximum(a, 0.2), [(3, 4)], {}),
    ("where", lambda a, b: ox.where(a > 0, a, b), [(3, 4), (3, 4)], {"away_from_zero": True}),
    ("where_broadcast", lambda a, b: ox.where(np.array([True, False, True, False]), a, b), [(3, 4), (1,)], {}),
    ("sum_all", lambda a: a.sum(), [(3, 4)], {}),
    ("sum_dim", lambda a: a.sum(1), [(3, 4, 2)], {}),
    ("sum_dims_keepdim", lambda a: a.sum((0, 2), keepdim=True), [(3, 4, 2)], {}),
    ("sum_axis_numpy", lambda a: a.sum(axis=-1, keepdims=True), [(3, 4)], {}),
    ("mean_all", lambda a: a.mean(), [(3, 4)], {}),
    ("mean_dim", lambda a: a.mean(dim=0), [(3, 4)], {}),
    ("mean_neg_dim_keep", lambda a: a.mean(-1, keepdim=True), [(2, 3, 4)], {}),
    ("amax_all", lambda a: a.amax(), [(3, 4)], {}),
    ("amax_dim", lambda a: a.amax(1), [(3, 4)], {}),
    ("amin_dims", lambda a: a.amin((0, 1), keepdim=True), [(3, 4, 2)], {}),
    ("max_dim_values", lambda a: a.max(dim=1).values, [(3, 4)], {}),
    ("min_dim_keepdim", lambda a: a.min(dim=0, keepdim=True)[0], [(3, 4)], {}),
    ("max_axis_numpy", lambda a: a.max(axis=0), [(3, 4)], {}),
    ("var", lambda a: a.var(), [(3, 4)], {}),
    ("var_dim_biased", lambda a: a.var(1, unbiased=False), [(3, 4)], {}),
    ("std_dim_keepdim", lambda a: a.std(0, keepdim=True), [(3, 4)], {}),
    ("std_correction", lambda a: a.std((0, 1), correction=0), [(3, 4, 2)], {}),
    ("logsumexp", lambda a: a.logsumexp(1), [(3, 4)], {}),
    ("norm", lambda a: a.norm(), [(3, 4)], {}),
    ("norm_dim_keepdim", lambda a: a.norm(dim=(0, 2), keepdim=True), [(3, 4, 2)], {}),
    ("norm_p1_dim", lambda a: a.norm(1, dim=1), [(3, 4)], {"away_from_zero": True}),
    ("softmax", lambda a: a.softmax(1), [(3, 4)], {}),
    ("softmax_dim0", lambda a: a.softmax(0), [(3, 4, 2)], {}),
    ("log_softmax", lambda a: a.log_softmax(-1), [(3, 4)], {}),
    ("reshape", lambda a: a.reshape(4, 3) * np.arange(12).reshape(4, 3), [(3, 4)], {}),
    ("view_minus1", lambda a: a.view(-1), [(3, 4)], {}),
    ("flatten", lambda a: a.flatten(1), [(2, 3, 4)], {}),
    ("transpose", lambda a: a.transpose(0, 2), [(2, 3, 4)], {}),
    ("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 4)], {}),
    ("T", lambda a: a.T, [(3, 4)], {}),
    ("mT", lambda a: a.mT, [(2, 3, 4)], {}),
    ("unsqueeze", lambda a: a.unsqueeze(1), [(3, 4)], {}),
    ("squeeze", lambda a: a.squeeze(1), [(3, 1, 4)], {}),
    ("squeeze_all", lambda a: a.squeeze(), [(1, 3, 1)], {}),
    ("expand", lambda a: a.expand(2, 3, 4), [(3, 1)], {}),
    ("expand_minus1", lambda a: a.expand(-1, 5), [(3, 1)], {}),
    ("repeat", lambda a: a.repeat(2, 3), [(2, 2)], {}),
    ("movedim", lambda a: a.movedim(0, -1), [(2, 3, 4)], {}),
    ("flip", lambda a: a.flip(1), [(2, 3)], {}),
    ("clone", lambda a: a.clone(), [(2, 3)], {}),
    ("getitem_int", lambda a: a[1], [(3, 4)], {}),
    ("getitem_slice", lambda a: a[:, 1:3], [(3, 4)], {}),
    ("getitem_step_neg", lambda a: a[::-2, None, 1], [(5, 4)], {}),
    ("getitem_ellipsis", lambda a: a[..., 0], [(2, 3, 4)], {}),
    ("getitem_int_array_repeats", lambda a: a[np.array([0, 2, 0, 0])], [(3, 4)], {}),
    ("getitem_pairs", lambda a: a[np.array([0, 1, 2]), np.array([3, 3, 1])], [(3, 4)], {}),
    ("getitem_bool_mask", lambda a: a[a._data > 0], [(3, 4)], {}),
    ("getitem_tensor_index", lambda a: a[ox.tensor([1, 1])], [(3, 4)], {}),
    ("getitem_list", lambda a: a[:, [0, 0, 3]], [(3, 4)], {}),
    ("gather", lambda a: a.gather(1, np.array([[0, 0], [3, 1], [2, 2]])), [(3, 4)], {}),
    ("index_select", lambda a: a.index_select(1, [2, 0, 2]), [(3, 4)], {}),
    ("masked_fill", lambda a: a.masked_fill(a._data > 0.5, 0.0), [(3, 4)], {}),
    ("cat", lambda a, b: ox.cat([a, b], 1), [(2, 3), (2, 4)], {}),
    ("cat_const", lambda a: ox.cat([a, np.ones((1, 3))], 0), [(2, 3)], {}),
    ("stack", lambda a, b: ox.stack([a, b, a], 1), [(2, 3), (2, 3)], {}),
    ("split", lambda a: ox.split(a, 2, 1)[1] * 2 + ox.split(a, [1, 3], 1)[0].sum(), [(2, 4)], {}),
    ("chunk", lambda a: a.chunk(3, 0)[2], [(5, 2)], {}),
    ("unbind", lambda a: a.unbind(1)[0] * a.unbind(1)[1], [(3, 2)], {}),
    ("pad", lambda a: ox.pad(a, (1, 2, 0, 1), value=0.5), [(2, 3)], {}),
    ("pad_crop", lambda a: ox.pad(a, (-1, 1)), [(2, 3)], {}),
    ("leaky_relu", lambda a: ox.nn.functional.leaky_relu(a, 0.1), [(3, 4)], {"away_from_zero": True}),
    ("elu", lambda a: ox.nn.functional.elu(a, 0.7), [(3, 4)], {"away_from_zero": True}),
    ("selu", lambda a: ox.nn.functional.selu(a), [(3, 4)], {"away_from_zero": True}),
    ("celu", lambda a: ox.nn.functional.celu(a, 1.5), [(3, 4)], {"away_from_zero": True}),
    ("gelu", lambda a: ox.nn.functional.gelu(a), [(3, 4)], {}),
    ("gelu_tanh", lambda a: ox.nn.functional.gelu(a, approximate="tanh"), [(3, 4)], {}),
    ("silu", lambda a: ox.nn.functional.silu(a), [(3, 4)], {}),
    ("softplus", lambda a: ox.nn.functional.softplus(a * 3, beta=2.0, threshold=5.0), [(3, 4)], {"seed": 1}),
    ("logsigmoid", lambda a: ox.nn.functional.logsigmoid(a), [(3, 4)], {}),
    ("mish", lambda a: ox.nn.functional.mish(a), [(3, 4)], {}),
    ("softsign", lambda a: ox.nn.functional.softsign(a), [(3, 4)], {"away_from_zero": True}),
    ("relu6", lambda a: ox.nn.functional.relu6(a * 4), [(3, 4)], {"away_from_zero": True}),
    ("prelu", lambda a, w: ox.nn.functional.prelu(a, w), [(2, 3, 4), (3,)], {"away_from_zero": True}),
    ("maxout", lambda a: ox.nn.functional.maxout(a, 2), [(2, 6)], {}),
    ("normalize", lambda a: ox.nn.functional.normalize(a, dim=1), [(3, 4)], {}),
    ("cosine_similarity", lambda a, b: ox.nn.functional.cosine_similarity(a, b), [(3, 4), (3, 4)], {}),
    ("pairwise_distance", lambda a, b: ox.nn.functional.pairwise_distance(a, b), [(3, 4), (3, 4)], {}),
    ("linear", lambda x, w, b: ox.nn.functional.linear(x, w, b), [(3, 4), (5, 4), (5,)], {}),
    ("linear_3d_input", lambda x, w: ox.nn.functional.linear(x, w), [(2, 3, 4), (5, 4)], {}),
    ("linear_1d_input", lambda x, w, b: ox.nn.functional.linear(x, w, b), [(4,), (5, 4), (5,)], {}),
    ("bilinear", lambda x1, x2, w, b: ox.nn.functional.bilinear(x1, x2, w, b), [(3, 2), (3, 4), (5, 2, 4), (5,)], {}),
    ("layer_norm_fn", lambda x, w, b: ox.nn.functional.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)], {}),
    ("group_norm_fn", lambda x, w, b: ox.nn.functional.group_norm(x, 2, w, b), [(2, 4, 3), (4,), (4,)], {}),
    ("batch_norm_train_fn", lambda x, w, b: ox.nn.functional.batch_norm(x, None, None, w, b, training=True),
     [(5, 3), (3,), (3,)], {}),
    ("instance_norm_fn", lambda x: ox.nn.functional.instance_norm(x), [(2, 3, 2, 3)], {}),
    ("cumsum", lambda a: a.cumsum(1), [(3, 4)], {}),
    ("prod", lambda a: a.prod(1), [(3, 4)], {}),
    ("prod_all_keepdim", lambda a: a.prod(), [(2, 3)], {}),
    ("tril", lambda a: a.tril(), [(2, 3, 3)], {}),
    ("triu_offset", lambda a: a.triu(1), [(3, 4)], {}),
    ("sort_values", lambda a: a.sort(1, descending=True).values, [(3, 4)], {}),
    ("topk_values", lambda a: a.topk(2, dim=0).values, [(4, 3)], {}),
    ("graph_reuse", lambda a, b: (a * b + a).sum(0) * (a - b).mean(0), [(3, 4), (3, 4)], {}),
]


@pytest.mark.parametrize("name,fn,shapes,kw", CASES, ids=[c[0] for c in CASES])
def test_gradcheck_op(name, fn, shapes, kw):
    inputs = _inputs(shapes, **kw)
    assert ox.gradcheck(fn, inputs)


def test_gradcheck_agrees_with_helpers_check_grad():
    # the shared test helper (independent implementation) on one composite op
    x = np.random.default_rng(0).standard_normal((3, 4))
    w = random_projection((3,), seed=1)
    xt = ox.tensor(x, dtype=ox.float64, requires_grad=True)

    def f():
        return float(np.sum(w * (ox.tensor(x, dtype=ox.float64).softmax(1) * 2)[:, 1].tanh().numpy()))

    ((xt.softmax(1) * 2)[:, 1].tanh() * w).sum().backward()
    check_grad(f, x, xt.grad.numpy())


@pytest.mark.parametrize("name,fn,shapes,kw", [c for c in CASES if c[0] in (
    "add_broadcast", "mul", "div", "matmul_broadcast", "softmax", "log_softmax", "var", "std_dim_keepdim",
    "logsumexp", "getitem_pairs", "cat", "stack", "pad", "gelu", "elu")], ids=lambda c: c if isinstance(c, str) else "")
def test_forward_matches_numpy_in_float32(name, fn, shapes, kw):
    inputs = _inputs(shapes, **kw)
    out64 = fn(*inputs).numpy()
    inputs32 = [t.detach().float() for t in inputs]
    out32 = fn(*inputs32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.numpy(), out64, rtol=2e-5, atol=2e-6)


def test_values_against_numpy():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4))
    t = ox.tensor(a, dtype=ox.float64)
    np.testing.assert_allclose(t.var(1).numpy(), a.var(1, ddof=1))
    np.testing.assert_allclose(t.std().numpy(), a.std(ddof=1))
    np.testing.assert_allclose(t.logsumexp(0).numpy(), np.log(np.exp(a).sum(0)))
    e = np.exp(a - a.max(1, keepdims=True))
    np.testing.assert_allclose(t.softmax(1).numpy(), e / e.sum(1, keepdims=True))
    np.testing.assert_allclose(t.log_softmax(1).numpy(), np.log(e / e.sum(1, keepdims=True)))
    v, i = t.max(dim=1)
    np.testing.assert_array_equal(i.numpy(), a.argmax(1))
    np.testing.assert_allclose(v.numpy(), a.max(1))
    assert i.dtype == np.int64
    np.testing.assert_allclose(ox.pad(t, (1, 0)).numpy(), np.pad(a, ((0, 0), (1, 0))))
    np.testing.assert_allclose((t @ t.T).numpy(), a @ a.T)


def test_max_tie_gradient_is_shared_like_torch():
    x = ox.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.amax().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0.5, 0.5])
    y = ox.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    y.max(dim=1).values.sum().backward()
    assert y.grad.numpy().sum() == 1.0  # one index gets it all


def test_maximum_tie_splits_gradient():
    a = ox.tensor([1.0, 2.0], requires_grad=True)
    b = ox.tensor([1.0, 0.0], requires_grad=True)
    ox.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.5, 1.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.5, 0.0])


def test_clamp_gradient_passes_at_bounds_inclusive():
    x = ox.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    x.clamp(0.0, 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 1, 1, 1, 0])


def test_relu_and_abs_gradient_at_zero_is_zero():
    x = ox.tensor([0.0, 1.0, -1.0], requires_grad=True)
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 2.0, -1.0])


def test_float32_gradients_have_input_dtype_and_shape():
    a = ox.randn(3, 1, requires_grad=True)
    b = ox.randn(4, dtype=ox.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and a.grad.shape == (3, 1)
    assert b.grad.dtype == np.float64 and b.grad.shape == (4,)


def test_comparisons_have_no_grad_and_give_bool():
    a = ox.randn(3, requires_grad=True)
    for r in (a > 0, a < 0, a >= 0, a <= 0, a == a, a != 0):
        assert r.dtype == np.bool_ and not r.requires_grad and r.grad_fn is None
    assert (a == a).all().item()


def test_ndarray_on_the_left_defers_to_tensor():
    a = ox.randn(3, requires_grad=True)
    out = np.ones(3, np.float32) * a
    assert isinstance(out, ox.Tensor) and out.requires_grad
    out2 = np.ones(3, np.float32) - a
    assert isinstance(out2, ox.Tensor)
    np.testing.assert_allclose(out2.numpy(), 1 - a.numpy())


def test_cast_backward_returns_gradient_in_input_dtype():
    x = ox.randn(2, 3, requires_grad=True)
    w = np.arange(6.0).reshape(2, 3)
    y = x.double() * w
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), w)


@pytest.mark.parametrize("sa,sb", [((128, 64), (64, 128)), ((4, 64, 64), (64, 64)), ((4, 64, 64), (4, 64, 64)),
                                   ((2, 96, 96), (96, 64))])
def test_large_matmul_runs_on_the_rust_gemm_with_correct_gradients(sa, sb, monkeypatch):
    import sys

    calls = []
    rules = sys.modules["oxinet.autograd.rules"]  # forward and gradient products go through _mm there
    real = rules._ox_matmul
    monkeypatch.setattr(rules, "_ox_matmul", lambda a, b: calls.append(1) or real(a, b))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    ta, tb = ox.tensor(a, dtype=ox.float64, requires_grad=True), ox.tensor(b, dtype=ox.float64, requires_grad=True)
    out = ta @ tb
    g = rng.standard_normal(out.shape)
    out.backward(g)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12)
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g[..., None] if b.ndim == 1 else g
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a, -1, -2) @ g2
    if gb.ndim > b2.ndim:
        gb = gb.sum(0)
    np.testing.assert_allclose(ta.grad.numpy(), ga.reshape(a.shape), rtol=1e-10)
    np.testing.assert_allclose(tb.grad.numpy(), gb.reshape(b.shape), rtol=1e-10)
    assert calls, "the large product did not use oxinet.ops.matmul"


def test_sort_topk_cumsum_prod_values():
    a = np.random.default_rng(0).standard_normal((3, 5))
    t = ox.tensor(a, dtype=ox.float64)
    v, i = t.sort(1)
    np.testing.assert_array_equal(v.numpy(), np.sort(a, 1))
    np.testing.assert_array_equal(i.numpy(), np.argsort(a, 1))
    v, i = t.topk(2)
    np.testing.assert_array_equal(v.numpy(), -np.sort(-a, 1)[:, :2])
    np.testing.assert_allclose(t.cumsum(0).numpy(), np.cumsum(a, 0))
    np.testing.assert_allclose(t.prod(1).numpy(), np.prod(a, 1))
    np.testing.assert_allclose(ox.tensor([2.0, 0.0, 3.0]).prod().item(), 0.0)
    x = ox.tensor([2.0, 0.0, 3.0], requires_grad=True)
    x.prod().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 6.0, 0.0])
    with pytest.raises(ValueError, match="'k'"):
        t.topk(6)


def test_norm_gradient_at_zero_is_zero_like_torch():
    x = ox.zeros(2, 3, requires_grad=True)
    ox.nn.functional.normalize(x, dim=1).sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))  # 1 / eps, as in PyTorch, not NaN
    y = ox.zeros(3, requires_grad=True)
    y.norm().backward()
    assert np.all(y.grad.numpy() == 0)


def test_setitem_records_copy_slices():
    def build(a, b):
        out = ox.zeros(3, 4, dtype=ox.float64)
        out[:, 0] = a * 2  # value requires grad: out becomes part of the graph
        out[1:, 1:3] = b  # broadcast assignment
        h = out * 1.0
        h[0] = 5.0  # constant written over a recorded tensor
        return h * out

    a, b = _inputs([(3,), (2,)])
    assert ox.gradcheck(build, [a, b])
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        x[0] = 3.0


def test_setitem_in_a_time_loop_like_the_course_rnn():
    rng = np.random.default_rng(0)
    wx = ox.tensor(rng.standard_normal((3, 2)), dtype=ox.float64, requires_grad=True)
    xs = ox.tensor(rng.standard_normal((4, 5, 3)), dtype=ox.float64)

    def run(w):
        hs = ox.zeros(4, 5, 2, dtype=ox.float64)
        h = ox.zeros(4, 2, dtype=ox.float64)
        for t in range(5):
            h = (xs[:, t] @ w + h * 0.5).tanh()
            hs[:, t] = h
        return hs

    assert ox.gradcheck(run, [wx])
