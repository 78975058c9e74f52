"""Autograd engine semantics: accumulation, reuse, retain_graph, hooks, no_grad, Function."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import oxinet as ox
from oxinet.autograd import Function


def test_course_computation_graph_F73():
    # J = 3(a + bc) with a=5, b=3, c=2: J=33, dJ/da=3, dJ/db=3c=6, dJ/dc=3b=9
    a, b, c = (ox.tensor(v, requires_grad=True) for v in (5.0, 3.0, 2.0))
    J = 3 * (a + b * c)
    J.backward()
    assert J.item() == 33
    assert (a.grad.item(), b.grad.item(), c.grad.item()) == (3, 6, 9)


def test_reused_tensor_accumulates_all_paths():
    x = ox.tensor([2.0], requires_grad=True)
    y = x * x  # dy/dx = 2x
    z = y * x + y + x  # dz/dx = 3x^2 + 2x + 1
    z.sum().backward()
    assert x.grad.item() == pytest.approx(3 * 4 + 4 + 1)


def test_diamond_graph_processes_node_once_after_all_consumers():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    a = h * 2
    b = h * 3
    (a + b).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 5 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_leaf_grad_accumulates_across_backward_calls():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_second_backward_through_freed_graph_raises():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_graph_without_saved_values_can_run_twice_like_torch():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_backward_on_non_scalar_needs_gradient():
    x = ox.randn(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="implicitly"):
        y.backward()
    y.backward(ox.tensor([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.0, 4.0])
    with pytest.raises(RuntimeError, match="'gradient' has shape"):
        (x * 2).backward(np.ones(4))


def test_backward_without_grad_raises():
    x = ox.randn(3)
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.sum().backward()


def test_no_grad_context_and_decorator():
    x = ox.randn(3, requires_grad=True)
    with ox.no_grad():
        y = x * 2
        assert not ox.is_grad_enabled()
        with ox.enable_grad():
            z = x * 2
    assert ox.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @ox.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert ox.is_grad_enabled()


def test_set_grad_enabled():
    x = ox.randn(2, requires_grad=True)
    with ox.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    ox.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        ox.set_grad_enabled(True)


def test_no_grad_restores_flag_on_exception():
    with pytest.raises(ValueError):
        with ox.no_grad():
            raise ValueError("boom")
    assert ox.is_grad_enabled()


def test_detach_shares_memory_and_cuts_graph():
    x = ox.randn(3, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.numpy())
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), d.numpy())


def test_requires_grad_rules():
    x = ox.randn(3)
    assert x.is_leaf and not x.requires_grad
    x.requires_grad_()
    assert x.requires_grad
    y = x * 2
    assert not y.is_leaf and y.requires_grad
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="floating point"):
        ox.tensor([1, 2]).requires_grad_()


def test_inplace_on_leaf_requiring_grad_raises_unless_no_grad():
    w = ox.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1.0)
    with ox.no_grad():
        w.add_(1.0)
        w[0] = 5.0
    assert w.numpy()[0] == 5.0


def test_hooks_on_leaf_and_intermediate():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = x * 3
    y.register_hook(lambda g: g * 2)  # doubles the gradient flowing into y
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    np.testing.assert_allclose(seen[0], [6.0, 6.0])
    h.remove()
    x.grad = None
    (x * 1).sum().backward()
    assert len(seen) == 1


def test_retain_grad_on_intermediate():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.numpy())
    assert x.grad is not None


def test_autograd_grad_leaves_dot_grad_alone():
    x = ox.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = (y * y).sum()
    gx, gy = ox.autograd.grad(z, [x, y])
    np.testing.assert_allclose(gy.numpy(), 2 * y.numpy())
    np.testing.assert_allclose(gx.numpy(), 18 * x.numpy())
    assert x.grad is None


def test_backward_inputs_argument():
    x = ox.tensor([1.0], requires_grad=True)
    w = ox.tensor([2.0], requires_grad=True)
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None and w.grad.item() == 1.0


def test_graph_is_freed_with_the_output():
    x = ox.randn(100, requires_grad=True)
    h = x.exp()
    y = h * h  # the graph saves h's array
    ref = weakref.ref(h.numpy())
    del h
    gc.collect()
    assert ref() is not None
    del y
    gc.collect()
    assert ref() is None


def test_saved_arrays_released_after_backward():
    x = ox.randn(10, requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert node.saved is not None and not isinstance(node.saved, tuple)  # FREED marker


class Cube(Function):
    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        return k * x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * ctx.k * x ** 2, None


class SplitTwo(Function):
    @staticmethod
    def forward(ctx, x):
        idx = np.argmax(x)
        ctx.mark_non_differentiable()
        return x * 2, x ** 2, np.array(idx)

    @staticmethod
    def backward(ctx, g1, g2, g3):
        raise AssertionError("never called with saved x")


class TwoOut(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 2, x ** 2

    @staticmethod
    def backward(ctx, g1, g2):
        (x,) = ctx.saved_tensors
        return g1 * 2 + g2 * 2 * x


def test_custom_function_single_output():
    x = ox.tensor([1.0, 2.0], dtype=ox.float64, requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name() == "CubeBackward"
    assert ox.gradcheck(lambda t: Cube.apply(t, 2.0), [x])


def test_custom_function_multiple_outputs_and_unused_output():
    x = ox.tensor([1.0, 2.0, 3.0], dtype=ox.float64, requires_grad=True)
    a, b = TwoOut.apply(x)
    (a.sum() + b.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 + 2 * x.numpy())
    x.grad = None
    a, b = TwoOut.apply(x)
    b.sum().backward()  # gradient of a is materialised as zeros
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())
    assert ox.gradcheck(lambda t: TwoOut.apply(t), [x])


def test_custom_function_without_grad_returns_plain_tensors():
    x = ox.tensor([1.0, 2.0])
    y = Cube.apply(x, 1.0)
    assert not y.requires_grad and y.grad_fn is None


def test_gradcheck_reports_worst_input():
    class Wrong(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g, g  # wrong for both, but y's error is visible too

    x = ox.tensor(np.full(3, 1.0), dtype=ox.float64, requires_grad=True)
    y = ox.tensor(np.full(3, 5.0), dtype=ox.float64, requires_grad=True)
    with pytest.raises(ox.GradcheckError, match="input 0"):
        ox.gradcheck(Wrong.apply, [x, y])
    res = ox.gradcheck(Wrong.apply, [x, y], raise_exception=False, return_result=True)
    assert not res.passed
    assert res.worst_input == 0  # x's gradient should be 5 but is 1: relative difference is largest
    assert res.relative_differences[0] > 0.5


def test_gradcheck_needs_float64():
    x = ox.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        ox.gradcheck(lambda t: t * 2, [x])
    with pytest.raises(ValueError, match="requires_grad"):
        ox.gradcheck(lambda t: t * 2, [ox.randn(3, dtype=ox.float64)])


def test_gradcheck_with_params_argument():
    lin = ox.nn.Linear(3, 2).double()
    x = ox.randn(4, 3, dtype=ox.float64)
    assert ox.gradcheck(lin, [x], params=lin.parameters())


def test_grad_fn_names():
    x = ox.randn(2, requires_grad=True)
    assert (x + 1).grad_fn.name() == "AddBackward"
    assert (x * x).grad_fn.name() == "MulBackward"
    assert x.exp().grad_fn.name() == "ExpBackward"
    assert "grad_fn=<MulBackward>" in repr(x * x)


def test_function_needs_input_grad():
    seen = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, x, y):
            seen.append(ctx.needs_input_grad)
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g, g

    a = ox.randn(2, requires_grad=True)
    b = ox.randn(2)
    Probe.apply(a, b)
    with ox.no_grad():
        Probe.apply(a, b)
    assert seen == [(True, False), (False, False)]


def test_in_place_accumulation_does_not_corrupt_shared_gradients():
    # s's node hands one (engine-owned) array to both a and b; a later contribution to a
    # must not be added into b's gradient. Every term order is tried (the processing order
    # of ready nodes depends on it).
    import itertools

    for perm in itertools.permutations(["ss", "aa", "bb"]):
        x = ox.tensor([1.0, 2.0], requires_grad=True)
        w = ox.tensor([3.0, 5.0], requires_grad=True)
        a = x * 1.0
        b = w * 1.0
        s = a + b
        terms = {"ss": s * 1.0 + s * 1.0, "aa": a * a, "bb": b * 1.0}
        t = terms[perm[0]] + terms[perm[1]] + terms[perm[2]]
        t.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 + 2 * x.numpy(), err_msg=str(perm))
        np.testing.assert_allclose(w.grad.numpy(), [3.0, 3.0], err_msg=str(perm))


def test_many_slices_accumulate_into_one_buffer():
    x = ox.randn(50, 3, dtype=ox.float64, requires_grad=True)
    h = x * 2.0
    total = None
    for t in range(50):
        term = h[t] * (t + 1)
        total = term if total is None else total + term
    parts = h.unbind(1)
    total = total.sum() + parts[0].sum() + h[np.array([0, 0, 1])].sum()
    total.backward()
    expected = np.repeat((2.0 * np.arange(1, 51))[:, None], 3, 1)
    expected[:, 0] += 2.0
    expected[0] += 4.0
    expected[1] += 2.0
    np.testing.assert_allclose(x.grad.numpy(), expected)
    assert ox.gradcheck(lambda v: sum(r.sum() * (i + 1) for i, r in enumerate(v.unbind(0))) + v[0].prod(),
                        [ox.randn(4, 2, dtype=ox.float64, requires_grad=True)])


def test_grad_mode_is_per_thread():
    import threading

    x = ox.randn(2, requires_grad=True)
    started, release = threading.Event(), threading.Event()

    def worker():
        with ox.no_grad():
            started.set()
            release.wait(5)

    th = threading.Thread(target=worker)
    th.start()
    started.wait(5)
    try:
        assert ox.is_grad_enabled()
        assert (x * 2).requires_grad  # the other thread's no_grad does not leak here
    finally:
        release.set()
        th.join()


def test_layer_over_a_kernel_pair_is_one_small_class():
    """The pattern kernel layers follow: a Function over ops.f / its backward, and a Module."""
    from oxinet import ops

    class GemmLinearFn(Function):
        @staticmethod
        def forward(ctx, x, w, b):
            ctx.save_for_backward(x, w)
            return ops.gemm(x, w, b, beta=1.0, trans_b=True)  # x @ w.T + b on the Rust GEMM

        @staticmethod
        def backward(ctx, dy):
            x, w = ctx.saved_tensors
            dx = ops.matmul(dy, w) if ctx.needs_input_grad[0] else None
            dw = ops.gemm(dy, x, trans_a=True) if ctx.needs_input_grad[1] else None
            return dx, dw, dy.sum(0)

    class GemmLinear(ox.nn.Linear):
        def forward(self, x):
            return GemmLinearFn.apply(x, self.weight, self.bias)

    ox.manual_seed(0)
    layer = GemmLinear(4, 3).double()
    x = ox.randn(5, 4, dtype=ox.float64, requires_grad=True)
    np.testing.assert_allclose(layer(x).numpy(), ox.nn.Linear.forward(layer, x).numpy(), rtol=1e-12)
    assert ox.gradcheck(layer, [x], params=layer.parameters())


def test_gradcheck_names_the_worst_parameter():
    class BadBias(ox.nn.Linear):
        def forward(self, x):
            out = ox.nn.functional.linear(x, self.weight) + self.bias.detach()
            return out + (self.bias * 0.0)  # bias gradient wrongly zero

    layer = BadBias(3, 2).double()
    x = ox.randn(4, 3, dtype=ox.float64)
    with pytest.raises(ox.GradcheckError, match="param 'bias'"):
        ox.gradcheck(layer, [x], params=layer.named_parameters())
