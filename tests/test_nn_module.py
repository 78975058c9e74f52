"""Module machinery: registration, traversal, modes, state_dict, repr, containers, dtype."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import oxinet as ox
from oxinet import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(8, 3)
        self.scale = nn.Parameter(ox.ones(1))
        self.register_buffer("step", np.zeros((), np.int64))
        self.register_buffer("cache", np.zeros(2, np.float32), persistent=False)
        self.not_registered = ox.zeros(3)

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.bn(self.fc1(x))))) * self.scale


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"]
    assert len(list(net.parameters())) == 7
    assert [n for n, _ in net.named_buffers()] == ["step", "cache", "bn.running_mean", "bn.running_var",
                                                  "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["fc1", "bn", "act", "drop", "fc2"]
    assert len(list(net.modules())) == 6
    assert net.get_submodule("fc1") is net.fc1
    assert net.get_parameter("fc2.bias") is net.fc2.bias
    assert net.num_parameters() == 4 * 8 + 8 + 8 + 8 + 8 * 3 + 3 + 1


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2


def test_setattr_errors_and_reassignment():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        net.scale = ox.ones(1)
    net.scale = None
    assert "scale" not in dict(net.named_parameters())
    net.fc1 = nn.Linear(4, 8)  # replacing a module keeps it registered
    assert net._modules["fc1"] is net.fc1
    assert next(iter(net.named_children()))[0] == "fc1"  # keeps its place, like PyTorch
    del net.fc2
    assert "fc2" not in net._modules
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Bad(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(ox.ones(1))
        Bad()


def test_train_eval_propagates():
    net = Net()
    net.eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_requires_grad():
    net = Net()
    out = net(ox.randn(5, 4)).sum()
    out.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_state_dict_round_trip_is_exact():
    ox.manual_seed(0)
    a = Net()
    a(ox.randn(6, 4))  # update BN running stats
    sd = copy.deepcopy(a.state_dict())
    assert "cache" not in sd and "step" in sd
    ox.manual_seed(1)
    b = Net()
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    for (k1, v1), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k1 == k2
        np.testing.assert_array_equal(v1.numpy(), v2.numpy())
        assert v1.dtype == v2.dtype
    a.eval(), b.eval()
    x = ox.randn(3, 4)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_state_dict_shares_memory_like_torch():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    assert np.shares_memory(sd["weight"].numpy(), lin.weight.numpy())
    assert not sd["weight"].requires_grad


def test_load_state_dict_strict_errors():
    lin = nn.Linear(2, 3)
    sd = lin.state_dict()
    bad = OrderedDict(sd)
    del bad["bias"]
    bad["extra"] = np.zeros(1)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "bias"'):
        lin.load_state_dict(bad)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        lin.load_state_dict(bad)
    res = lin.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["extra"]
    wrong = {"weight": np.zeros((3, 3)), "bias": np.zeros(3)}
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape \(3, 3\)"):
        lin.load_state_dict(wrong)
    with pytest.raises(RuntimeError, match="size mismatch"):
        lin.load_state_dict(wrong, strict=False)


def test_load_state_dict_accepts_numpy_arrays_and_casts():
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.eye(2), "bias": np.array([1.0, 2.0])})
    assert lin.weight.dtype == np.float32
    np.testing.assert_array_equal(lin.weight.numpy(), np.eye(2))


def test_repr_like_torch():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Dropout(0.1)))
    assert repr(seq) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Dropout(p=0.1, inplace=False)\n"
        "  )\n"
        ")"
    )
    assert repr(nn.BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"


def test_apply_and_to_dtype():
    net = Net()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and "Linear" in seen
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.bn.running_mean.dtype == np.float64
    assert net.step.dtype == np.int64
    assert net(ox.randn(3, 4, dtype=ox.float64)).dtype == np.float64
    net.to(ox.float32)
    assert all(p.dtype == np.float32 for p in net.parameters())
    with pytest.raises(TypeError, match="floating"):
        net.to(np.int32)


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    lin(ox.randn(3, 2))
    assert calls == [(3, 2)]
    h.remove()
    lin(ox.randn(3, 2))
    assert len(calls) == 1
    lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    np.testing.assert_allclose(lin(ox.randn(1, 2)).numpy(), lin.bias.numpy()[None])


def test_sequential_container():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    seq.append(nn.Sigmoid())
    assert len(seq) == 4
    del seq[1]
    assert [type(m).__name__ for m in seq] == ["Linear", "Linear", "Sigmoid"]
    named = nn.Sequential(OrderedDict(first=nn.Linear(2, 2), second=nn.Tanh()))
    assert isinstance(named.first, nn.Linear) and named["second"] is named.second
    with pytest.raises(IndexError):
        seq[5]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), 3)


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    ml.append(nn.Linear(2, 2))
    ml[0] = nn.Identity()
    assert isinstance(ml[0], nn.Identity) and len(list(ml.parameters())) == 6
    md = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.ReLU()})
    assert "a" in md and list(md.keys()) == ["a", "b"]
    md["c"] = nn.Linear(1, 2)
    assert len(list(md.parameters())) == 4
    assert sorted(k for k in md.state_dict()) == ["a.bias", "a.weight", "c.bias", "c.weight"]
    pl = nn.ParameterList([np.zeros(2, np.float32), nn.Parameter(ox.ones(3))])
    assert len(list(pl.parameters())) == 2


def test_parameter_behaviour():
    p = nn.Parameter(ox.zeros(2, 3))
    assert p.requires_grad and p.is_leaf and isinstance(p, ox.Tensor)
    assert repr(p).startswith("Parameter containing:\ntensor(")
    q = nn.Parameter(np.zeros(2), requires_grad=False)
    assert not q.requires_grad and q.dtype == np.float64
    r = p * 2
    assert type(r) is ox.Tensor


def test_deepcopy_and_pickle_of_a_model():
    import pickle

    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    for m2 in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        w2 = m2[0].weight
        assert w2 is not m[0].weight and isinstance(w2, nn.Parameter) and w2.requires_grad
        assert m2[0]._parameters["weight"] is w2  # registry and attribute stay the same object
        np.testing.assert_array_equal(w2.numpy(), m[0].weight.numpy())
        m2(ox.randn(4, 2)).sum().backward()
        assert w2.grad is not None and m[0].weight.grad is None


def test_layer_constructor_errors():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="'approximate'"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="'pool_size'"):
        nn.Maxout(0)
    with pytest.raises(ValueError, match="channels"):
        nn.GroupNorm(2, 4)(ox.randn(2, 6, 3))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(5)(ox.randn(2, 4))
    with pytest.raises(TypeError, match="floating"):
        nn.LayerNorm(2)(ox.tensor([[1, 2]]))


def test_parameters_to_vector_round_trip():
    from oxinet.nn.utils import parameters_to_vector, vector_to_parameters

    lin = nn.Linear(3, 2)
    v = parameters_to_vector(lin.parameters())
    assert v.shape == (8,)
    np.testing.assert_array_equal(v.numpy()[:6], lin.weight.numpy().reshape(-1))
    vector_to_parameters(np.arange(8.0), lin.parameters())
    np.testing.assert_array_equal(lin.bias.numpy(), [6.0, 7.0])
    with pytest.raises(ValueError, match="8"):
        vector_to_parameters(np.arange(7.0), lin.parameters())


def test_buffer_and_module_assignment_rules():
    bn = nn.BatchNorm1d(2)
    bn.running_mean = np.ones(2, np.float32)  # arrays become Tensors
    assert isinstance(bn.running_mean, ox.Tensor) and bn._buffers["running_mean"] is bn.running_mean
    with pytest.raises(TypeError, match="as buffer 'running_var'"):
        bn.running_var = [1, 2]
    net = Net()
    net.fc1 = None
    assert net._modules["fc1"] is None and "fc1.weight" not in net.state_dict()
    with pytest.raises(TypeError, match="child module 'fc1'"):
        net.fc1 = 3
    net.extra = nn.Buffer(np.zeros(3))
    assert "extra" in dict(net.named_buffers())
    with pytest.raises(KeyError, match="can't contain"):
        net.register_buffer("a.b", None)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        net.missing


def test_container_editing():
    seq = nn.Sequential(nn.ReLU(), nn.Tanh())
    seq.insert(1, nn.Sigmoid()).extend([nn.Identity()])
    assert [type(m).__name__ for m in seq] == ["ReLU", "Sigmoid", "Tanh", "Identity"]
    seq[0] = nn.ELU()
    del seq[1:3]
    assert [type(m).__name__ for m in seq] == ["ELU", "Identity"]
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    ml.insert(0, nn.Sigmoid())
    del ml[1]
    ml += [nn.Identity()]
    assert [type(m).__name__ for m in ml] == ["Sigmoid", "Tanh", "Identity"]
    assert len(ml[1:]) == 2 and len(ml + nn.ModuleList([nn.ReLU()])) == 4
    with pytest.raises(NotImplementedError):
        ml(ox.zeros(1))
    md = nn.ModuleDict()
    md.update([("a", nn.ReLU()), ("b", nn.Tanh())])
    assert isinstance(md.pop("a"), nn.ReLU) and list(md) == ["b"]
    del md["b"]
    md["c"] = nn.Identity()
    md.clear()
    assert len(md) == 0
