"""``Module``: the base class of layers and models (PyTorch's ``nn.Module`` shape).

Assigning a :class:`Parameter` or a Module to an attribute registers it; tensors that are
state but not learnable (BatchNorm's running statistics) are registered with
:meth:`Module.register_buffer`. ``state_dict`` / ``load_state_dict`` save and restore both.
Registered objects are also kept in the instance ``__dict__`` so attribute access in
``forward`` costs nothing extra.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from oxinet.tensor import Tensor, _resolve_dtype
from oxinet.nn.parameter import Buffer, Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _RemovableHandle:
    def __init__(self, store: dict, key):
        self._store = store
        self._key = key

    def remove(self):
        self._store.pop(self._key, None)


class Module:
    """Base class for all layers. Subclasses call ``super().__init__()`` first, assign
    parameters/submodules as attributes and define ``forward``."""

    _version = 1
    _hook_id = 0

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()

    # ------------------------------------------------------------- registration

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, "_parameters")
            params[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(oxinet.nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, "_modules")
            d["_modules"][name] = value
        elif params is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(oxinet.nn.Module or None expected)"
                )
            d["_modules"][name] = None
        elif isinstance(value, Buffer):
            if params is None:
                raise AttributeError("cannot assign buffers before Module.__init__() call")
            self._forget(name, "_buffers")
            value = Tensor(value._data)
            d["_buffers"][name] = value
        elif params is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                if isinstance(value, np.ndarray):
                    value = Tensor(value)
                else:
                    raise TypeError(
                        f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                        "(oxinet.Tensor, numpy.ndarray or None expected)"
                    )
            d["_buffers"][name] = value
        d[name] = value

    def _forget(self, name, keep=None):
        """Unregister ``name`` everywhere except the store ``keep`` (so that re-assigning a
        name keeps its position in that store, as PyTorch's dict assignment does)."""
        d = self.__dict__
        for key in ("_parameters", "_modules", "_buffers"):
            if key != keep:
                d[key].pop(name, None)
        d["_non_persistent_buffers"].discard(name)

    def __delattr__(self, name):
        d = self.__dict__
        if "_parameters" in d:
            self._forget(name)
        object.__delattr__(self, name)

    def __getattr__(self, name):
        # only reached when normal lookup fails
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            store = d.get(key)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def register_parameter(self, name: str, param):
        """Register ``param`` (a Parameter, or None for an absent optional parameter)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: cannot assign '{type(param).__name__}' object to "
                            f"parameter '{name}' (oxinet.nn.Parameter or None required)")
        self._forget(name, "_parameters")
        self._parameters[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True):
        """Register a non-learnable state tensor; persistent buffers go into ``state_dict``."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            if isinstance(tensor, np.ndarray):
                tensor = Tensor(tensor)
            else:
                raise TypeError(f"register_buffer: cannot assign '{type(tensor).__name__}' object to buffer "
                                f"'{name}' (oxinet.Tensor, numpy.ndarray or None required)")
        self._forget(name, "_buffers")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)
        self.__dict__[name] = tensor

    def add_module(self, name: str, module):
        """Register ``module`` (or None) as a child called ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module subclass")
        self._check_name(name, "module")
        self._forget(name, "_modules")
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def _check_name(self, name, what):
        if not isinstance(name, str):
            raise TypeError(f"{what} name should be a string, got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{what} name can't contain '.' or be empty, got {name!r}")

    # ------------------------------------------------------------- calling

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required 'forward' function")

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        if d["_forward_pre_hooks"] or d["_forward_hooks"]:
            for hook in list(d["_forward_pre_hooks"].values()):
                r = hook(self, args)
                if r is not None:
                    args = r if isinstance(r, tuple) else (r,)
            out = self.forward(*args, **kwargs)
            for hook in list(d["_forward_hooks"].values()):
                r = hook(self, args, out)
                if r is not None:
                    out = r
            return out
        return self.forward(*args, **kwargs)

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after ``forward``; a non-None result replaces the output."""
        Module._hook_id += 1
        self._forward_hooks[Module._hook_id] = hook
        return _RemovableHandle(self._forward_hooks, Module._hook_id)

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before ``forward``; a non-None result replaces the args."""
        Module._hook_id += 1
        self._forward_pre_hooks[Module._hook_id] = hook
        return _RemovableHandle(self._forward_pre_hooks, Module._hook_id)

    # ------------------------------------------------------------- traversal

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from m.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, attr, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for k, v in getattr(m, attr).items():
                if v is None:
                    continue
                if remove_duplicate:
                    if id(v) in seen:
                        continue
                    seen.add(id(v))
                yield mprefix + ("." if mprefix else "") + k, v

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(name, Parameter) pairs, dotted names, each parameter once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str):
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if item not in mod._modules:
                raise AttributeError(f"{type(mod).__name__} has no submodule `{item}` (looking up '{target}')")
            mod = mod._modules[item]
        return mod

    def get_parameter(self, target: str):
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if name not in mod._parameters:
            raise AttributeError(f"{type(mod).__name__} has no parameter `{name}`")
        return mod._parameters[name]

    def apply(self, fn):
        """Call ``fn(m)`` on every submodule (children first) and on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------- modes and grads

    def train(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise ValueError("train: 'mode' is expected to be a bool")
        self.__dict__["training"] = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True):
        """Reset the gradients of all parameters (to None by default, like PyTorch)."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad._data[...] = 0

    # ------------------------------------------------------------- dtype

    def _apply_dtype(self, dtype):
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p._data.dtype.kind == "f":
                    p._data = p._data.astype(dtype)
                    if p.grad is not None:
                        p.grad._data = p.grad._data.astype(dtype)
            for name, b in m._buffers.items():
                if b is not None and b._data.dtype.kind == "f":
                    b._data = b._data.astype(dtype)
        return self

    def to(self, *args, dtype=None, **kwargs):
        """``to(dtype)`` converts floating parameters and buffers in place; device strings such
        as ``'cpu'`` are accepted and ignored."""
        for a in args:
            if isinstance(a, str) and a.startswith("cpu"):
                continue
            dtype = a
        if dtype is None:
            return self
        d = _resolve_dtype(dtype, op="Module.to")
        if d.kind != "f":
            raise TypeError(f"Module.to: only floating dtypes are supported, got {d}")
        return self._apply_dtype(d)

    def float(self):
        return self._apply_dtype(np.dtype(np.float32))

    def double(self):
        return self._apply_dtype(np.dtype(np.float64))

    def type(self, dtype):
        return self.to(dtype)

    def cpu(self):
        return self

    # ------------------------------------------------------------- state

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        """Parameters and persistent buffers by dotted name. Values share memory with the
        module (detached Tensors; ``keep_vars=True`` returns the Parameters themselves):
        copy them (``copy.deepcopy``) to keep a snapshot."""
        if destination is None:
            destination = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values from ``state_dict`` into this module's parameters and buffers (in place,
        cast to their dtype). With ``strict`` every key must match exactly; shape mismatches
        always raise. Returns ``(missing_keys, unexpected_keys)``."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a dict-like object, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        for k, target in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            arr = v._data if isinstance(v, Tensor) else np.asarray(v)
            if arr.shape != target._data.shape:
                errors.append(
                    f"size mismatch for {k}: copying a param with shape {arr.shape} from checkpoint, "
                    f"the shape in current model is {target._data.shape}."
                )
                continue
            if arr.dtype.kind not in "fiub":
                errors.append(f"bad dtype for {k}: {arr.dtype}")
                continue
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors)
            )
        for k, target in own.items():
            if k in state_dict:
                v = state_dict[k]
                arr = v._data if isinstance(v, Tensor) else np.asarray(v)
                if target._data.flags.writeable:
                    target._data[...] = arr
                else:
                    target._data = np.array(arr, dtype=target._data.dtype)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------- repr

    def extra_repr(self) -> str:
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        child_lines = []
        for name, m in self._modules.items():
            mod_str = repr(m).replace("\n", "\n  ")
            child_lines.append(f"({name}): {mod_str}")
        lines = lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra.split("\n")) == 1 and not child_lines:
                main += extra
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self):
        keys = list(super().__dir__())
        return sorted(set(keys))

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of parameter elements (optionally only those requiring grad)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def __getstate__(self):
        return self.__dict__.copy()

    def __setstate__(self, state):
        self.__dict__.update(state)
