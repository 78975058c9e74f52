"""``Optimizer``: parameter groups, per-parameter state, ``state_dict`` (torch.optim shape).

Updates run in place on the parameters' NumPy arrays, outside the autograd graph.
"""

from __future__ import annotations

import copy

import numpy as np

from oxinet.tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``. ``params`` is an iterable of Tensors or of
    dicts (parameter groups) holding ``'params'`` and per-group hyperparameters."""

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params argument given to the optimizer should be an "
                            "iterable of Tensors or dicts, but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict):
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor")
        group = dict(param_group)
        group["params"] = params
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(f"{type(self).__name__}: parameter group didn't specify a value of required "
                                 f"optimization parameter {k}")
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad._data[...] = 0

    def step(self, closure=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _closure(self, closure):
        if closure is None:
            return None
        from oxinet.grad_mode import enable_grad

        with enable_grad():
            return closure()

    # ------------------------------------------------------------- state

    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}`` with
        copies of the state arrays; parameters are numbered in group order."""
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            gd = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            gd["params"] = ids
            groups.append(gd)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v))
                        for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: loaded state dict has {len(groups)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"load_state_dict: parameter group {i} has {len(saved['params'])} parameters in "
                                 f"the state dict but {len(own['params'])} in the optimizer")
        self.state = {}
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = copy.deepcopy(v)
            for idx, p in zip(saved["params"], own["params"]):
                if idx in state_dict["state"]:
                    st = {}
                    for k, v in state_dict["state"][idx].items():
                        if isinstance(v, np.ndarray):
                            v = v.astype(p.dtype) if v.shape == p.shape and v.dtype.kind == "f" else v.copy()
                        else:
                            v = copy.deepcopy(v)
                        st[k] = v
                    self.state[p] = st

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _check(cond, op, msg):
    if not cond:
        raise ValueError(f"{op}: {msg}")
