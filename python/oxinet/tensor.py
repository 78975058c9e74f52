"""``oxinet.Tensor``: a NumPy array with reverse-mode automatic differentiation.

A Tensor wraps one ``numpy.ndarray`` (``t.numpy()`` returns it without a copy). Operations
on tensors that require grad record a node in the graph (``t.grad_fn``); ``loss.backward()``
walks that graph in reverse topological order and accumulates ``.grad`` on the leaves.

Semantics follow PyTorch: broadcasting with gradients summed back to each input's shape,
``dim``/``keepdim`` arguments (NumPy's ``axis``/``keepdims`` are accepted too), float32 as
the default floating dtype, ``retain_graph``, ``no_grad``. The gradient rules are written
on NumPy arrays here; matrix products run on oxinet's Rust GEMM.
"""

from __future__ import annotations

import math
import numbers
from collections import namedtuple

import numpy as np

from oxinet.grad_mode import state as _GM
from oxinet.autograd import graph as _graph
from oxinet.autograd.graph import run_backward
from oxinet.ops import activation as _act_ops
from oxinet.autograd.rules import (  # noqa: F401  (the gradient rules the ops below record)
    _shape_of, _sum_axes, _unbroadcast, _AddB, _SubB, _MulB, _DivB, _PowB, _UnaryB, _MatmulB, _SMALL_GEMM, _mm,
    _expand_to, _SumB, _MeanB, _AmaxB, _IndexReduceB, _VarB, _Norm2B, _LogsumexpB, _SoftmaxB,
    _LogSoftmaxB, _ReshapeB, _PermuteB, _ExpandB, _CastB, _IndexB, _SetItemB, _CatB, _StackB, _PadB,
    _WhereB, _MaxMinB, _FixedB, NegBackward, ExpBackward, LogBackward, Log1pBackward, SqrtBackward,
    AbsBackward, SinBackward, CosBackward, TanhBackward, SigmoidBackward, ReluBackward,
    PowScalarBackward, CumsumBackward, ClampBackward, LeakyReluBackward, EluBackward,
    KernelGeluBackward, KernelSiluBackward, _RUST_ACT, _RUST_SOFTMAX, _kernel_ok, GeluBackward,
    GeluTanhBackward, SiluBackward, SoftplusBackward, LogSigmoidBackward, _erf_vec, _erf,
)

_ndarray = np.ndarray
_asarray = np.asarray
_new = object.__new__

_default_dtype = np.dtype(np.float32)

MinMax = namedtuple("MinMax", ["values", "indices"])


def get_default_dtype() -> np.dtype:
    """The floating dtype given to Python floats and float64 data by ``oxinet.tensor``."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype (float32 or float64)."""
    global _default_dtype
    d = np.dtype(dtype)
    if d not in (np.float32, np.float64):
        raise TypeError(f"set_default_dtype: 'dtype' must be float32 or float64, got {d}")
    _default_dtype = d


def _resolve_dtype(dtype, name="dtype", op="tensor"):
    if dtype is None:
        return None
    if dtype is bool:
        return np.dtype(np.bool_)
    if dtype is float:
        return _default_dtype
    if dtype is int:
        return np.dtype(np.int64)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: '{name}' is not a dtype: {dtype!r}") from None


def _to_array(data, dtype=None, copy=False) -> np.ndarray:
    """Convert ``data`` following oxinet's dtype policy (see :func:`tensor`)."""
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
        arr = np.asarray([d._data if isinstance(d, Tensor) else d for d in data])
    else:
        arr = np.asarray(data)
    if dtype is not None:
        return np.array(arr, dtype=dtype, copy=True) if copy else arr.astype(dtype, copy=False)
    kind = arr.dtype.kind
    if isinstance(data, Tensor):
        return arr.copy() if copy else arr
    if kind == "f":
        if arr.dtype != _default_dtype and not (isinstance(data, _ndarray) and arr.dtype == np.float32):
            # float64 (NumPy's and Python's float) and float16 follow the default dtype
            arr = arr.astype(_default_dtype)
    elif kind in "iu":
        if not isinstance(data, (_ndarray, Tensor)):
            arr = arr.astype(np.int64, copy=False)
    elif kind == "b":
        pass
    elif kind == "O" or kind in "USV":
        raise TypeError(f"tensor: cannot convert data of dtype {arr.dtype} to a Tensor")
    if copy:
        arr = arr.copy()
    return arr


def _dims(dim, ndim, op="op"):
    """Normalise an int / sequence / None ``dim`` into a sorted tuple of non-negative axes."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        out = []
        for d in dim:
            out.append(_one_dim(d, ndim, op))
        if len(set(out)) != len(out):
            raise ValueError(f"{op}: 'dim' {tuple(dim)} repeats an axis")
        return tuple(sorted(out))
    return (_one_dim(dim, ndim, op),)


def _one_dim(d, ndim, op="op"):
    try:
        d = int(d)
    except TypeError:
        raise TypeError(f"{op}: 'dim' must be an int, got {type(d).__name__}") from None
    n = max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"{op}: 'dim' {d} is out of range for a tensor with {ndim} dimensions")
    return d % n



def _edge(t):
    """The graph edge of ``t``: its node, itself (a leaf that requires grad) or None."""
    fn = t.grad_fn
    if fn is not None:
        return fn
    return t if t._rg else None


def _result(data, node):
    """Wrap an op's output and attach ``node``."""
    if type(data) is not _ndarray:
        data = _asarray(data)
    t = _new(Tensor)
    t._data = data
    t.grad = None
    t.grad_fn = node
    t._rg = True
    t._hooks = None
    t._retains_grad = False
    return t


def _plain(data):
    if type(data) is not _ndarray:
        data = _asarray(data)
    t = _new(Tensor)
    t._data = data
    t.grad = None
    t.grad_fn = None
    t._rg = False
    t._hooks = None
    t._retains_grad = False
    return t


def _operand(x):
    """(array, tensor-or-None) for a Tensor, NumPy array or Python number."""
    if isinstance(x, Tensor):
        return x._data, x
    if isinstance(x, (float, int, np.generic, _ndarray)):
        return x, None
    if isinstance(x, numbers.Number):
        return x, None
    return _asarray(x), None


def _unary(x, out, fn, saved):
    """Attach a unary node to ``out`` when ``x`` is being recorded."""
    if _GM.enabled and x._rg:
        node = _UnaryB.__new__(_UnaryB)
        node.inputs = (_edge(x),)
        node.saved = saved
        node.hooks = None
        node.fn = fn
        return _result(out, node)
    return _plain(out)


def _node(cls, inputs, saved=None):
    n = cls.__new__(cls)
    n.inputs = inputs
    n.saved = saved
    n.hooks = None
    return n


def _is_advanced_key(key):
    items = key if isinstance(key, tuple) else (key,)
    for k in items:
        if isinstance(k, (_ndarray, list, Tensor)):
            return True
        if isinstance(k, np.generic) and k.dtype.kind == "b":
            return True
        if isinstance(k, bool):
            return True
    return False


def _convert_key(key):
    if isinstance(key, Tensor):
        return key._data
    if isinstance(key, tuple):
        return tuple(k._data if isinstance(k, Tensor) else k for k in key)
    return key


# ----------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array with automatic differentiation.

    ``Tensor(data, requires_grad=False, dtype=None)`` wraps ``data``: a float32 or float64
    NumPy array is used as is (no copy); Python numbers and lists follow :func:`tensor`'s
    dtype rule. Use :func:`oxinet.tensor` for a copying constructor with PyTorch's rules.
    """

    __slots__ = ("_data", "grad", "grad_fn", "_rg", "_hooks", "_retains_grad", "__weakref__")
    _is_node = False

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy interop. ``ndarray <op> Tensor`` runs the Tensor op (so it is recorded);
        other NumPy functions on Tensors compute on the arrays and return arrays, and refuse
        a Tensor that requires grad (its gradient would be silently lost), like PyTorch."""
        if method == "__call__" and not kwargs and len(inputs) == 2:
            a, b = inputs
            if b is self and not isinstance(a, Tensor):
                name = _REFLECTED_UFUNCS.get(ufunc)
                if name is not None:
                    return getattr(self, name)(a)
            elif a is self and not isinstance(b, Tensor):
                name = _FORWARD_UFUNCS.get(ufunc)
                if name is not None:
                    return getattr(self, name)(b)
        if _GM.enabled and any(isinstance(x, Tensor) and x._rg for x in inputs):
            raise TypeError(
                f"numpy.{ufunc.__name__} on a Tensor that requires grad would drop its gradient; "
                "use the Tensor operation (e.g. x.exp()) or call .detach() first"
            )
        args = tuple(x._data if isinstance(x, Tensor) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(o._data if isinstance(o, Tensor) else o for o in kwargs["out"])
        return getattr(ufunc, method)(*args, **kwargs)
    __hash__ = object.__hash__

    def __init__(self, data=None, requires_grad=False, dtype=None):
        if data is None:
            data = np.empty((0,), _default_dtype)
        dt = _resolve_dtype(dtype, op="Tensor")
        if isinstance(data, _ndarray) and dt is None:
            arr = data
        else:
            arr = _to_array(data, dt)
        self._data = arr
        self.grad = None
        self.grad_fn = None
        self._rg = False
        self._hooks = None
        self._retains_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(data, node=None):
        if node is None:
            return _plain(data)
        return _result(data, node)

    # ---------------------------------------------------------------- properties

    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True):
        """Set ``requires_grad`` on a leaf in place; returns self."""
        requires_grad = bool(requires_grad)
        if self.grad_fn is not None:
            if requires_grad:
                return self
            raise RuntimeError(
                "requires_grad_: you can only change requires_grad of leaf tensors; "
                "use .detach() to get a tensor that does not require grad"
            )
        if requires_grad and self._data.dtype.kind not in "fc":
            raise RuntimeError(
                f"requires_grad_: only floating point tensors can require gradients, got dtype "
                f"{self._data.dtype}"
            )
        self._rg = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def data(self):
        """A Tensor sharing this tensor's array, outside the graph."""
        return _plain(self._data)

    @data.setter
    def data(self, value):
        self._data = value._data if isinstance(value, Tensor) else _asarray(value)

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def T(self):
        return self.permute(tuple(range(self._data.ndim - 1, -1, -1)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def size(self, dim=None):
        if dim is None:
            return self._data.shape
        return self._data.shape[_one_dim(dim, self._data.ndim, "size")]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return self._data.size

    def element_size(self) -> int:
        return self._data.itemsize

    def numpy(self) -> np.ndarray:
        """The underlying NumPy array (no copy: writing to it changes the tensor)."""
        return self._data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None:
            return self._data.astype(dtype, copy=bool(copy))
        return self._data.copy() if copy else self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(
                f"item: only a tensor with one element can be converted to a Python scalar, "
                f"got shape {self._data.shape}"
            )
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self._data.size} elements is ambiguous"
            )
        return bool(self._data.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._data.item())

    def __repr__(self):
        body = np.array2string(self._data, separator=", ", prefix="tensor(", precision=4)
        extra = ""
        if self._data.dtype not in (_default_dtype, np.int64, np.bool_):
            extra += f", dtype={self._data.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn=<{self.grad_fn.name()}>"
        elif self._rg:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __format__(self, spec):
        if self._data.size == 1 and spec:
            return format(self._data.item(), spec)
        return repr(self) if not spec else format(str(self), spec)

    def new_zeros(self, *size, dtype=None):
        return _plain(np.zeros(_size_arg(size), dtype or self._data.dtype))

    def new_ones(self, *size, dtype=None):
        return _plain(np.ones(_size_arg(size), dtype or self._data.dtype))

    def new_full(self, size, fill_value, dtype=None):
        return _plain(np.full(_size_arg((size,)), fill_value, dtype or self._data.dtype))

    def new_tensor(self, data, dtype=None):
        return _plain(np.array(data._data if isinstance(data, Tensor) else data, dtype=dtype or self._data.dtype))

    def type_as(self, other):
        return self._cast(other.dtype)

    def __reduce_ex__(self, protocol):
        return (_rebuild, (self._data, self._rg if self.grad_fn is None else False))

    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError(
                "deepcopy: only leaf tensors (created by the user, not by an op) support deepcopy; "
                "call .detach() first"
            )
        new = type(self).__new__(type(self))
        new._data = self._data.copy()
        new.grad = None if self.grad is None else _plain(self.grad._data.copy())
        new.grad_fn = None
        new._rg = self._rg
        new._hooks = None
        new._retains_grad = False
        memo[id(self)] = new
        return new

    # ---------------------------------------------------------------- autograd

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf of the graph.

        ``gradient`` is d(loss)/d(self); it may be omitted only when ``self`` has one element.
        Without ``retain_graph=True`` the arrays the graph saved are freed, and a second
        ``backward`` through the same nodes raises ``RuntimeError``.
        """
        if create_graph:
            raise NotImplementedError("backward: create_graph=True (higher-order gradients) is not supported")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for tensors with one element, "
                    f"got shape {self._data.shape}; pass 'gradient'"
                )
            g = np.ones(self._data.shape, self._data.dtype)
        else:
            g = gradient._data if isinstance(gradient, Tensor) else _asarray(gradient)
            if g.shape != self._data.shape:
                raise RuntimeError(
                    f"backward: 'gradient' has shape {g.shape} but the tensor has shape {self._data.shape}"
                )
            g = g.astype(self._data.dtype, copy=False)
        if inputs is not None:
            from oxinet.autograd import grad as _grad

            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            grads = _grad([self], inputs, [g], retain_graph=bool(retain_graph), allow_unused=True)
            for t, gi in zip(inputs, grads):
                if gi is not None:
                    _graph.accumulate_leaf(t, gi._data)
            return
        run_backward((self,), (g,), bool(retain_graph))

    def detach(self):
        """A new tensor sharing this one's data, outside the graph."""
        return _plain(self._data)

    def detach_(self):
        self.grad_fn = None
        self._rg = False
        return self

    def retain_grad(self):
        """Make a non-leaf tensor keep its ``.grad`` after ``backward``."""
        if self.grad_fn is None:
            if not self._rg:
                raise RuntimeError("retain_grad: can't retain_grad on a tensor that has requires_grad=False")
            return
        if self._retains_grad:
            return
        self._retains_grad = True
        import weakref

        ref = weakref.ref(self)

        def _keep(grad):
            t = ref()
            if t is not None:
                if t.grad is None:
                    t.grad = _plain(np.array(grad._data, copy=True))
                else:
                    t.grad._data = t.grad._data + grad._data

        self.grad_fn.register_hook(_keep)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient during backward; a non-None return
        value replaces the gradient. Returns a handle with ``remove()``."""
        if not self._rg:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require grad")
        if self.grad_fn is not None:
            self.grad_fn.register_hook(hook)
            hooks = self.grad_fn.hooks
        else:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
            hooks = self._hooks
        return _HookHandle(hooks, hook)

    # ---------------------------------------------------------------- arithmetic

    def __add__(self, other):
        od, ot = _operand(other)
        out = self._data + od
        if _GM.enabled and (self._rg or (ot is not None and ot._rg)):
            n = _node(_AddB, (_edge(self), _edge(ot) if ot is not None else None))
            n.sa = self._data.shape
            n.sb = od.shape if ot is not None else np.shape(od)
            return _result(out, n)
        return _plain(out)

    __radd__ = __add__

    def __sub__(self, other):
        od, ot = _operand(other)
        out = self._data - od
        if _GM.enabled and (self._rg or (ot is not None and ot._rg)):
            n = _node(_SubB, (_edge(self), _edge(ot) if ot is not None else None))
            n.sa = self._data.shape
            n.sb = od.shape if ot is not None else np.shape(od)
            return _result(out, n)
        return _plain(out)

    def __rsub__(self, other):
        od, ot = _operand(other)
        out = od - self._data
        if _GM.enabled and self._rg:
            n = _node(_SubB, (None, _edge(self)))
            n.sa = np.shape(od)
            n.sb = self._data.shape
            return _result(out, n)
        return _plain(out)

    def __mul__(self, other):
        od, ot = _operand(other)
        out = self._data * od
        if _GM.enabled and (self._rg or (ot is not None and ot._rg)):
            return _result(out, _node(_MulB, (_edge(self), _edge(ot) if ot is not None else None),
                                      (self._data, od)))
        return _plain(out)

    __rmul__ = __mul__

    def __truediv__(self, other):
        od, ot = _operand(other)
        out = self._data / od
        if _GM.enabled and (self._rg or (ot is not None and ot._rg)):
            return _result(out, _node(_DivB, (_edge(self), _edge(ot) if ot is not None else None),
                                      (self._data, od)))
        return _plain(out)

    def __rtruediv__(self, other):
        od, ot = _operand(other)
        out = od / self._data
        if _GM.enabled and self._rg:
            return _result(out, _node(_DivB, (None, _edge(self)), (od, self._data)))
        return _plain(out)

    div = divide = __truediv__

    def __pow__(self, other):
        od, ot = _operand(other)
        if ot is None and isinstance(od, (numbers.Number, np.generic)):
            out = self._data ** od
            return _unary(self, out, PowScalarBackward, (self._data, od))
        od = _asarray(od)
        out = self._data ** od
        if _GM.enabled and (self._rg or (ot is not None and ot._rg)):
            return _result(out, _node(_PowB, (_edge(self), _edge(ot) if ot is not None else None),
                                      (self._data, od, out)))
        return _plain(out)

    def __rpow__(self, other):
        od, _ = _operand(other)
        od = _asarray(od, dtype=self._data.dtype if self._data.dtype.kind == "f" else None)
        out = od ** self._data
        if _GM.enabled and self._rg:
            return _result(out, _node(_PowB, (None, _edge(self)), (od, self._data, out)))
        return _plain(out)

    pow = __pow__

    def __neg__(self):
        return _unary(self, -self._data, NegBackward, None)

    neg = negative = __neg__

    def __pos__(self):
        return self

    def __abs__(self):
        return _unary(self, np.abs(self._data), AbsBackward, (self._data,))

    abs = absolute = __abs__

    def __matmul__(self, other):
        od, ot = _operand(other)
        od = _asarray(od)
        return _matmul(self._data, od, self, ot)

    def __rmatmul__(self, other):
        od, ot = _operand(other)
        return _matmul(_asarray(od), self._data, ot, self)

    def matmul(self, other):
        return self.__matmul__(other)

    mm = bmm = matmul

    def __floordiv__(self, other):
        od, _ = _operand(other)
        return _plain(self._data // od)

    def __mod__(self, other):
        od, _ = _operand(other)
        return _plain(self._data % od)

    def add(self, other, alpha=1):
        return self + (other * alpha if alpha != 1 else other)

    def sub(self, other, alpha=1):
        return self - (other * alpha if alpha != 1 else other)

    subtract = sub

    def mul(self, other):
        return self * other

    multiply = mul

    # ---------------------------------------------------------------- comparisons (no grad)

    def _cmp(self, other, op):
        od, _ = _operand(other)
        return _plain(op(self._data, od))

    def __eq__(self, other):
        return self._cmp(other, np.equal)

    def __ne__(self, other):
        return self._cmp(other, np.not_equal)

    def __lt__(self, other):
        return self._cmp(other, np.less)

    def __le__(self, other):
        return self._cmp(other, np.less_equal)

    def __gt__(self, other):
        return self._cmp(other, np.greater)

    def __ge__(self, other):
        return self._cmp(other, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __and__(self, other):
        return self._cmp(other, np.logical_and if self._data.dtype == np.bool_ else np.bitwise_and)

    def __or__(self, other):
        return self._cmp(other, np.logical_or if self._data.dtype == np.bool_ else np.bitwise_or)

    def __xor__(self, other):
        return self._cmp(other, np.logical_xor if self._data.dtype == np.bool_ else np.bitwise_xor)

    def __invert__(self):
        if self._data.dtype == np.bool_:
            return _plain(~self._data)
        return _plain(np.invert(self._data))

    def equal(self, other) -> bool:
        od, _ = _operand(other)
        return bool(np.array_equal(self._data, od))

    def allclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
        od, _ = _operand(other)
        return bool(np.allclose(self._data, od, rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isnan(self):
        return _plain(np.isnan(self._data))

    def isinf(self):
        return _plain(np.isinf(self._data))

    def isfinite(self):
        return _plain(np.isfinite(self._data))

    def argmax(self, dim=None, keepdim=False, *, axis=None, out=None):
        _no_out(out, "argmax")
        dim = axis if axis is not None else dim
        d = None if dim is None else _one_dim(dim, self._data.ndim, "argmax")
        return _plain(np.argmax(self._data, axis=d, keepdims=keepdim))

    def argmin(self, dim=None, keepdim=False, *, axis=None, out=None):
        _no_out(out, "argmin")
        dim = axis if axis is not None else dim
        d = None if dim is None else _one_dim(dim, self._data.ndim, "argmin")
        return _plain(np.argmin(self._data, axis=d, keepdims=keepdim))

    def any(self, dim=None, keepdim=False):
        return _plain(np.any(self._data, axis=_dims(dim, self._data.ndim, "any"), keepdims=keepdim))

    def all(self, dim=None, keepdim=False):
        return _plain(np.all(self._data, axis=_dims(dim, self._data.ndim, "all"), keepdims=keepdim))

    def sign(self):
        return _plain(np.sign(self._data))

    def floor(self):
        return _plain(np.floor(self._data))

    def ceil(self):
        return _plain(np.ceil(self._data))

    def round(self):
        return _plain(np.round(self._data))

    # ---------------------------------------------------------------- elementwise math

    def exp(self):
        out = np.exp(self._data)
        return _unary(self, out, ExpBackward, (out,))

    def log(self):
        return _unary(self, np.log(self._data), LogBackward, (self._data,))

    def log1p(self):
        return _unary(self, np.log1p(self._data), Log1pBackward, (self._data,))

    def sqrt(self):
        out = np.sqrt(self._data)
        return _unary(self, out, SqrtBackward, (out,))

    def rsqrt(self):
        return self.sqrt().reciprocal()

    def square(self):
        return self * self

    def reciprocal(self):
        return 1.0 / self

    def sin(self):
        return _unary(self, np.sin(self._data), SinBackward, (self._data,))

    def cos(self):
        return _unary(self, np.cos(self._data), CosBackward, (self._data,))

    def tanh(self):
        out = np.tanh(self._data)
        return _unary(self, out, TanhBackward, (out,))

    def sigmoid(self):
        x = self._data
        if _kernel_ok(x, _RUST_ACT):
            out = _act_ops.sigmoid(x)
            return _unary(self, out, SigmoidBackward, (out,))
        with np.errstate(over="ignore"):
            out = 1.0 / (1.0 + np.exp(-x))
        out = out.astype(x.dtype, copy=False)
        return _unary(self, out, SigmoidBackward, (out,))

    def relu(self):
        x = self._data
        out = _act_ops.relu(x) if _kernel_ok(x, 0) else np.maximum(x, 0)
        return _unary(self, out, ReluBackward, (out,))

    def clamp(self, min=None, max=None):
        """Clip to ``[min, max]``; the gradient passes where ``min <= x <= max``."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of 'min' and 'max' must be given")
        x = self._data
        lo = min._data if isinstance(min, Tensor) else min
        hi = max._data if isinstance(max, Tensor) else max
        out = np.clip(x, lo, hi)
        if out.dtype != x.dtype and x.dtype.kind == "f":
            out = out.astype(x.dtype)
        if _GM.enabled and self._rg:
            mask = np.ones(x.shape, bool)
            if lo is not None:
                mask &= x >= lo
            if hi is not None:
                mask &= x <= hi
            return _unary(self, out, ClampBackward, (mask,))
        return _plain(out)

    clip = clamp

    def maximum(self, other):
        return maximum(self, other)

    def minimum(self, other):
        return minimum(self, other)

    # ---------------------------------------------------------------- reductions

    def sum(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None, out=None):
        _no_out(out, "sum")
        if axis is not None:
            dim = axis
        if keepdims is not None:
            keepdim = keepdims
        x = self._data
        dims = _dims(dim, x.ndim, "sum")
        out = x.sum(axis=dims, keepdims=keepdim, dtype=dtype)
        if x.dtype == np.bool_ and dtype is None:
            out = _asarray(out).astype(np.int64)
        if _GM.enabled and self._rg:
            n = _node(_SumB, (_edge(self),))
            n.shape = x.shape
            n.dims = dims
            n.keep = keepdim
            return _result(out, n)
        return _plain(out)

    def mean(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None, out=None):
        _no_out(out, "mean")
        if axis is not None:
            dim = axis
        if keepdims is not None:
            keepdim = keepdims
        x = self._data
        dims = _dims(dim, x.ndim, "mean")
        out = x.mean(axis=dims, keepdims=keepdim, dtype=dtype)
        if _GM.enabled and self._rg:
            n = _node(_MeanB, (_edge(self),))
            n.shape = x.shape
            n.dims = dims
            n.keep = keepdim
            n.count = x.size if dims is None else int(np.prod([x.shape[d] for d in dims]))
            return _result(out, n)
        return _plain(out)

    def _amaxmin(self, dim, keepdim, is_max, op):
        x = self._data
        dims = _dims(dim, x.ndim, op)
        if x.size == 0:
            raise RuntimeError(f"{op}: the tensor is empty (shape {x.shape})")
        out = (np.amax if is_max else np.amin)(x, axis=dims, keepdims=keepdim)
        if _GM.enabled and self._rg:
            n = _node(_AmaxB, (_edge(self),), (x, _asarray(out)))
            n.dims = dims
            n.keep = keepdim
            return _result(out, n)
        return _plain(out)

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out(out, "amax")
        return self._amaxmin(axis if axis is not None else dim,
                             keepdims if keepdims is not None else keepdim, True, "amax")

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out(out, "amin")
        return self._amaxmin(axis if axis is not None else dim,
                             keepdims if keepdims is not None else keepdim, False, "amin")

    def _maxmin(self, dim, keepdim, axis, keepdims, is_max, op):
        if axis is not None:  # NumPy style: values only
            return self._amaxmin(axis, bool(keepdims), is_max, op)
        if dim is None:
            return self._amaxmin(None, False, is_max, op)
        if isinstance(dim, Tensor):  # torch.max(a, b) spelled a.max(b)
            return maximum(self, dim) if is_max else minimum(self, dim)
        x = self._data
        d = _one_dim(dim, x.ndim, op)
        if x.size == 0:
            raise RuntimeError(f"{op}: the tensor is empty (shape {x.shape})")
        idx = (np.argmax if is_max else np.argmin)(x, axis=d, keepdims=True)
        vals = np.take_along_axis(x, idx, axis=d)
        if not keepdim:
            idx = idx.squeeze(d)
            vals = vals.squeeze(d)
        indices = _plain(idx.astype(np.int64, copy=False))
        if _GM.enabled and self._rg:
            n = _node(_IndexReduceB, (_edge(self),), (idx,))
            n.shape = x.shape
            n.dim = d
            n.keep = keepdim
            n.dtype = x.dtype
            return MinMax(_result(vals, n), indices)
        return MinMax(_plain(vals), indices)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=False, out=None):
        """Largest value. With ``dim`` (PyTorch style) returns ``(values, indices)``; with
        ``axis`` (NumPy style) or no argument returns the values only."""
        _no_out(out, "max")
        return self._maxmin(dim, keepdim, axis, keepdims, True, "max")

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=False, out=None):
        """Smallest value; see :meth:`max` for the return convention."""
        _no_out(out, "min")
        return self._maxmin(dim, keepdim, axis, keepdims, False, "min")

    def _var(self, dim, correction, keepdim, std, op):
        x = self._data
        dims = _dims(dim, x.ndim, op)
        count = x.size if dims is None else int(np.prod([x.shape[d] for d in dims]))
        mean = x.mean(axis=dims, keepdims=True)
        centered = x - mean
        denom = count - correction
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (centered * centered).sum(axis=dims, keepdims=keepdim) / max(denom, 0)
            if std:
                out = np.sqrt(out)
        out = _asarray(out).astype(x.dtype, copy=False)
        if _GM.enabled and self._rg:
            n = _node(_VarB, (_edge(self),), (x, mean, out))
            n.dims = dims
            n.keep = keepdim
            n.denom = denom
            n.std = std
            return _result(out, n)
        return _plain(out)

    @staticmethod
    def _correction(unbiased, correction):
        if correction is not None:
            return correction
        return 1 if unbiased in (None, True) else 0

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=None, ddof=None, dtype=None, out=None):
        """Variance; unbiased (divides by N-1) by default like PyTorch. ``correction`` (or
        NumPy's ``ddof``) sets the subtracted count."""
        _no_out(out, "var")
        if ddof is not None:
            correction = ddof
        return self._var(axis if axis is not None else dim, self._correction(unbiased, correction),
                         keepdims if keepdims is not None else keepdim, False, "var")

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=None, ddof=None, dtype=None, out=None):
        """Standard deviation; unbiased by default like PyTorch (see :meth:`var`)."""
        _no_out(out, "std")
        if ddof is not None:
            correction = ddof
        return self._var(axis if axis is not None else dim, self._correction(unbiased, correction),
                         keepdims if keepdims is not None else keepdim, True, "std")

    def logsumexp(self, dim, keepdim=False):
        x = self._data
        dims = _dims(dim, x.ndim, "logsumexp")
        m = np.amax(x, axis=dims, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.exp(x - m).sum(axis=dims, keepdims=True)) + m
        if not keepdim:
            out = out.squeeze(dims)
        if _GM.enabled and self._rg:
            n = _node(_LogsumexpB, (_edge(self),), (x, out))
            n.dims = dims
            n.keep = keepdim
            return _result(out, n)
        return _plain(out)

    def norm(self, p=2, dim=None, keepdim=False):
        """The p-norm over ``dim`` (all elements by default); p = 1, 2, inf or any float."""
        if p == 2 or p == "fro":
            x = self._data
            dims = _dims(dim, x.ndim, "norm")
            out = np.sqrt((x * x).sum(axis=dims, keepdims=keepdim))
            if _GM.enabled and self._rg:
                n = _node(_Norm2B, (_edge(self),), (x, _asarray(out)))
                n.dims = dims
                n.keep = keepdim
                return _result(out, n)
            return _plain(out)
        if p == 1:
            return self.abs().sum(dim, keepdim)
        if p == float("inf"):
            return self.abs().amax(dim, keepdim)
        return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)

    def softmax(self, dim):
        x = self._data
        d = _one_dim(dim, x.ndim, "softmax")
        if _kernel_ok(x, _RUST_SOFTMAX):
            out = _act_ops.softmax(x, d)
        else:
            e = np.exp(x - np.amax(x, axis=d, keepdims=True))
            out = e / e.sum(axis=d, keepdims=True)
        if _GM.enabled and self._rg:
            n = _node(_SoftmaxB, (_edge(self),), (out,))
            n.dim = d
            return _result(out, n)
        return _plain(out)

    def log_softmax(self, dim):
        x = self._data
        d = _one_dim(dim, x.ndim, "log_softmax")
        if _kernel_ok(x, _RUST_SOFTMAX):
            out = _act_ops.log_softmax(x, d)
        else:
            z = x - np.amax(x, axis=d, keepdims=True)
            out = z - np.log(np.exp(z).sum(axis=d, keepdims=True))
        if _GM.enabled and self._rg:
            n = _node(_LogSoftmaxB, (_edge(self),), (out,))
            n.dim = d
            return _result(out, n)
        return _plain(out)

    def cumsum(self, dim):
        x = self._data
        d = _one_dim(dim, x.ndim, "cumsum")
        out = np.cumsum(x, axis=d)
        return _unary(self, out, CumsumBackward, (d,)) if x.dtype.kind == "f" else _plain(out)

    def prod(self, dim=None, keepdim=False):
        """Product of elements (gradient: product of the others; exact also with zeros)."""
        x = self
        if dim is None:
            x = x.reshape(-1)
            dim = 0
        d = _one_dim(dim, x.ndim, "prod")
        parts = x.unbind(d)
        if not parts:
            return _plain(np.ones(x.shape[:d] + x.shape[d + 1:], x.dtype))
        out = parts[0]
        for p in parts[1:]:
            out = out * p
        return out.unsqueeze(d) if keepdim else out

    def tril(self, diagonal=0):
        mask = np.tril(np.ones(self._data.shape[-2:], bool), diagonal)
        return where(mask, self, 0.0)

    def triu(self, diagonal=0):
        mask = np.triu(np.ones(self._data.shape[-2:], bool), diagonal)
        return where(mask, self, 0.0)

    def sort(self, dim=-1, descending=False):
        """(values, indices) sorted along ``dim`` (stable); values carry the gradient."""
        x = self._data
        d = _one_dim(dim, x.ndim, "sort")
        idx = np.argsort(-x if descending else x, axis=d, kind="stable")
        return MinMax(self.gather(d, idx), _plain(idx.astype(np.int64)))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The ``k`` largest (or smallest) entries along ``dim`` as (values, indices)."""
        x = self._data
        d = _one_dim(dim, x.ndim, "topk")
        if not 0 <= k <= x.shape[d]:
            raise ValueError(f"topk: 'k' = {k} is out of range for dim {d} of size {x.shape[d]}")
        idx = np.argsort(-x if largest else x, axis=d, kind="stable")
        idx = np.take(idx, np.arange(k), axis=d)
        return MinMax(self.gather(d, idx), _plain(idx.astype(np.int64)))

    # ---------------------------------------------------------------- shape

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        x = self._data
        try:
            out = x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: shape {tuple(shape)} is invalid for a tensor of shape {x.shape} "
                             f"({x.size} elements)") from None
        if _GM.enabled and self._rg:
            n = _node(_ReshapeB, (_edge(self),))
            n.shape = x.shape
            return _result(out, n)
        return _plain(out)

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim=0, end_dim=-1):
        shape = self._data.shape
        if not shape:
            return self.reshape(1)
        s = _one_dim(start_dim, len(shape), "flatten")
        e = _one_dim(end_dim, len(shape), "flatten")
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        new = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
        return self.reshape(new)

    def unflatten(self, dim, sizes):
        shape = self._data.shape
        d = _one_dim(dim, len(shape), "unflatten")
        return self.reshape(shape[:d] + tuple(sizes) + shape[d + 1:])

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        x = self._data
        if len(dims) != x.ndim:
            raise ValueError(f"permute: 'dims' {tuple(dims)} has {len(dims)} entries but the tensor "
                             f"has {x.ndim} dimensions (shape {x.shape})")
        dims = tuple(_one_dim(d, x.ndim, "permute") for d in dims)
        if sorted(dims) != list(range(x.ndim)):
            raise ValueError(f"permute: 'dims' {dims} is not a permutation of the axes")
        out = x.transpose(dims)
        if _GM.enabled and self._rg:
            n = _node(_PermuteB, (_edge(self),))
            n.inv = tuple(np.argsort(dims))
            return _result(out, n)
        return _plain(out)

    def transpose(self, dim0, dim1):
        nd = self._data.ndim
        if nd < 2 and dim0 in (0, -1) and dim1 in (0, -1):
            return self
        d0 = _one_dim(dim0, nd, "transpose")
        d1 = _one_dim(dim1, nd, "transpose")
        perm = list(range(nd))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return self.permute(perm)

    swapaxes = transpose

    def t(self):
        if self._data.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got shape {self._data.shape}")
        return self.T

    def movedim(self, source, destination):
        nd = self._data.ndim
        src = _one_dim(source, nd, "movedim")
        dst = _one_dim(destination, nd, "movedim")
        perm = [i for i in range(nd) if i != src]
        perm.insert(dst, src)
        return self.permute(perm)

    def unsqueeze(self, dim):
        shape = self._data.shape
        d = _one_dim(dim, len(shape) + 1, "unsqueeze")
        return self.reshape(shape[:d] + (1,) + shape[d:])

    def squeeze(self, dim=None):
        shape = self._data.shape
        if dim is None:
            new = tuple(s for s in shape if s != 1)
        else:
            dims = _dims(dim, len(shape), "squeeze") or ()
            new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
        if new == shape:
            return self
        return self.reshape(new)

    def expand(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        x = self._data
        lead = len(sizes) - x.ndim
        if lead < 0:
            raise ValueError(f"expand: the number of sizes ({len(sizes)}) must be >= the tensor's "
                             f"dimensions (shape {x.shape})")
        target = tuple(x.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
        try:
            out = np.broadcast_to(x, target)
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {x.shape} to {tuple(sizes)}") from None
        if _GM.enabled and self._rg:
            n = _node(_ExpandB, (_edge(self),))
            n.shape = x.shape
            return _result(out, n)
        return _plain(out)

    def expand_as(self, other):
        return self.expand(other.shape)

    broadcast_to = expand

    def repeat(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        x = self
        lead = len(sizes) - x.ndim
        if lead < 0:
            raise ValueError(f"repeat: needs at least {x.ndim} sizes, got {len(sizes)}")
        shape = (1,) * lead + x.shape
        x = x.reshape(shape)
        # tile = expand over an inserted axis per dimension, then merge
        inter = []
        exp = []
        for r, s in zip(sizes, shape):
            inter += [1, s]
            exp += [r, s]
        x = x.reshape(inter).expand(exp)
        return x.reshape(tuple(r * s for r, s in zip(sizes, shape)))

    def contiguous(self):
        if self._data.flags.c_contiguous:
            return self
        return self.clone()

    def clone(self):
        out = np.array(self._data, copy=True, order="C")
        if _GM.enabled and self._rg:
            n = _node(_ReshapeB, (_edge(self),))
            n.shape = self._data.shape
            return _result(out, n)
        return _plain(out)

    def flip(self, dims):
        dims = _dims(dims, self._data.ndim, "flip")
        key = tuple(slice(None, None, -1) if i in dims else slice(None) for i in range(self._data.ndim))
        return self[key]

    # ---------------------------------------------------------------- indexing

    def __getitem__(self, key):
        key = _convert_key(key)
        x = self._data
        try:
            out = x[key]
        except IndexError as e:
            raise IndexError(f"index {key!r} is invalid for a tensor of shape {x.shape}: {e}") from None
        if _GM.enabled and self._rg:
            n = _node(_IndexB, (_edge(self),))
            n.key = key
            n.shape = x.shape
            n.dtype = x.dtype
            n.advanced = _is_advanced_key(key)
            return _result(out, n)
        return _plain(out)

    def __setitem__(self, key, value):
        """``x[key] = value``. Outside the graph this writes into the array in place. When
        ``x`` or ``value`` is recorded, ``x`` becomes the output of a copy-with-slice node
        (as PyTorch's CopySlices): gradients flow to ``value`` for the slice and to the old
        ``x`` elsewhere. The array is then a new copy, so earlier ``x.numpy()`` views do not
        see the write. Leaves that require grad cannot be written (use ``no_grad``)."""
        key = _convert_key(key)
        vt = value if isinstance(value, Tensor) else None
        vd = vt._data if vt is not None else value
        if not (_GM.enabled and (self._rg or (vt is not None and vt._rg))):
            self._data[key] = vd
            return
        if self.grad_fn is None and self._rg:
            raise RuntimeError(
                "__setitem__: in-place operation on a leaf tensor that requires grad; wrap it in "
                "'with oxinet.no_grad():' or write into a tensor computed from it"
            )
        new = self._data.copy()
        new[key] = vd
        n = _node(_SetItemB, (_edge(self), _edge(vt) if vt is not None else None))
        n.key = key
        n.vshape = _shape_of(vd)
        self._data = new
        self.grad_fn = n
        self._rg = True

    def index_select(self, dim, index):
        d = _one_dim(dim, self._data.ndim, "index_select")
        idx = index._data if isinstance(index, Tensor) else _asarray(index)
        key = (slice(None),) * d + (idx,)
        return self[key]

    def gather(self, dim, index):
        """``out[i][j] = self[i][index[i][j]]`` along ``dim`` (PyTorch's gather)."""
        d = _one_dim(dim, self._data.ndim, "gather")
        idx = index._data if isinstance(index, Tensor) else _asarray(index)
        grids = list(np.indices(idx.shape, sparse=True))
        grids[d] = idx
        return self[tuple(grids)]

    def masked_fill(self, mask, value):
        m = mask._data if isinstance(mask, Tensor) else _asarray(mask)
        return where(m, _asarray(value, dtype=self._data.dtype), self)

    def split(self, split_size_or_sections, dim=0):
        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return chunk(self, chunks, dim)

    def unbind(self, dim=0):
        d = _one_dim(dim, self._data.ndim, "unbind")
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self._data.shape[d]))

    # ---------------------------------------------------------------- dtype

    def to(self, *args, dtype=None, copy=False, **kwargs):
        """``to(dtype)`` casts (gradients flow back in the original dtype); device strings
        such as ``'cpu'`` are accepted and ignored."""
        for a in args:
            if isinstance(a, str) and a.startswith("cpu"):
                continue
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif a is not None and not isinstance(a, str):
                dtype = a
            elif isinstance(a, str):
                try:
                    dtype = np.dtype(a)
                except TypeError:
                    raise ValueError(f"to: unknown device or dtype {a!r} (only 'cpu' exists)") from None
        if dtype is None:
            return self.clone() if copy else self
        return self._cast(_resolve_dtype(dtype, op="to"), copy)

    def _cast(self, dtype, copy=False):
        x = self._data
        if x.dtype == dtype and not copy:
            return self
        out = x.astype(dtype)
        if _GM.enabled and self._rg and dtype.kind == "f":
            n = _node(_CastB, (_edge(self),))
            n.dtype = x.dtype
            return _result(out, n)
        return _plain(out)

    def type(self, dtype=None):
        if dtype is None:
            return str(self._data.dtype)
        return self._cast(_resolve_dtype(dtype, op="type"))

    astype = type

    def float(self):
        return self._cast(np.dtype(np.float32))

    def double(self):
        return self._cast(np.dtype(np.float64))

    def long(self):
        return self._cast(np.dtype(np.int64))

    def int(self):
        return self._cast(np.dtype(np.int32))

    def bool(self):
        return self._cast(np.dtype(np.bool_))

    def cpu(self):
        return self

    # ---------------------------------------------------------------- in-place

    def _check_inplace(self, op):
        if _GM.enabled and (self._rg or self.grad_fn is not None):
            what = "a leaf tensor that requires grad" if self.grad_fn is None else "a tensor in the autograd graph"
            raise RuntimeError(
                f"{op}: in-place operation on {what}; wrap it in 'with oxinet.no_grad():' "
                "or use an out-of-place operation"
            )

    def _inplace(self, op, values):
        self._check_inplace(op)
        x = self._data
        x[...] = values
        return self

    def zero_(self):
        return self._inplace("zero_", 0)

    def fill_(self, value):
        return self._inplace("fill_", value._data if isinstance(value, Tensor) else value)

    def copy_(self, src):
        s = src._data if isinstance(src, Tensor) else _asarray(src)
        return self._inplace("copy_", s)

    def add_(self, other, alpha=1):
        od, _ = _operand(other)
        self._check_inplace("add_")
        x = self._data
        x += od * alpha if alpha != 1 else od
        return self

    def sub_(self, other, alpha=1):
        od, _ = _operand(other)
        self._check_inplace("sub_")
        x = self._data
        x -= od * alpha if alpha != 1 else od
        return self

    def mul_(self, other):
        od, _ = _operand(other)
        self._check_inplace("mul_")
        x = self._data
        x *= od
        return self

    def div_(self, other):
        od, _ = _operand(other)
        self._check_inplace("div_")
        x = self._data
        x /= od
        return self

    def clamp_(self, min=None, max=None):
        self._check_inplace("clamp_")
        np.clip(self._data, min, max, out=self._data)
        return self

    def normal_(self, mean=0.0, std=1.0):
        from oxinet.random import generator

        return self._inplace("normal_", generator().normal(mean, std, self._data.shape))

    def uniform_(self, a=0.0, b=1.0):
        from oxinet.random import generator

        return self._inplace("uniform_", generator().uniform(a, b, self._data.shape))


def _size_arg(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def _no_out(out, op):
    if out is not None:
        raise TypeError(f"{op}: 'out' is not supported for Tensors")


_REFLECTED_UFUNCS = {
    np.add: "__radd__", np.subtract: "__rsub__", np.multiply: "__rmul__", np.true_divide: "__rtruediv__",
    np.power: "__rpow__", np.matmul: "__rmatmul__", np.less: "__gt__", np.greater: "__lt__",
    np.less_equal: "__ge__", np.greater_equal: "__le__", np.equal: "__eq__", np.not_equal: "__ne__",
    np.maximum: "maximum", np.minimum: "minimum",
}
_FORWARD_UFUNCS = {
    np.add: "__add__", np.subtract: "__sub__", np.multiply: "__mul__", np.true_divide: "__truediv__",
    np.power: "__pow__", np.matmul: "__matmul__", np.less: "__lt__", np.greater: "__gt__",
    np.less_equal: "__le__", np.greater_equal: "__ge__", np.equal: "__eq__", np.not_equal: "__ne__",
    np.maximum: "maximum", np.minimum: "minimum",
}


def _rebuild(data, requires_grad):
    t = Tensor(data)
    t._rg = requires_grad
    return t


class _HookHandle:
    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks, hook):
        self._hooks = hooks
        self._hook = hook

    def remove(self):
        try:
            self._hooks.remove(self._hook)
        except ValueError:
            pass


_graph._Tensor = Tensor


def _matmul(a, b, ta, tb):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ValueError(f"matmul: inner dimensions differ: a has shape {a.shape} (K={ka}), "
                         f"b has shape {b.shape} (K={kb})")
    out = _mm(a, b)
    if _GM.enabled and ((ta is not None and ta._rg) or (tb is not None and tb._rg)):
        return _result(out, _node(_MatmulB, (_edge(ta) if ta is not None else None,
                                             _edge(tb) if tb is not None else None), (a, b)))
    return _plain(out)


# ----------------------------------------------------------------------------- functions on several tensors


def _as_tensor_operand(x, like=None):
    if isinstance(x, Tensor):
        return x
    arr = _asarray(x)
    if like is not None and arr.dtype.kind == "f" and like.dtype.kind == "f" and np.ndim(x) == 0:
        arr = arr.astype(like.dtype)
    return _plain(arr)


def cat(tensors, dim=0):
    """Concatenate along an existing dimension ``dim``."""
    tensors = [_as_tensor_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: 'tensors' must not be empty")
    nd = tensors[0].ndim
    d = _one_dim(dim, nd, "cat")
    arrays = [t._data for t in tensors]
    for i, a in enumerate(arrays):
        if a.ndim != nd or a.shape[:d] + a.shape[d + 1:] != arrays[0].shape[:d] + arrays[0].shape[d + 1:]:
            raise ValueError(
                f"cat: tensor {i} has shape {a.shape}, which does not match tensor 0's shape "
                f"{arrays[0].shape} outside dim {d}"
            )
    out = np.concatenate(arrays, axis=d)
    if _GM.enabled and any(t._rg for t in tensors):
        n = _node(_CatB, tuple(_edge(t) for t in tensors))
        n.dim = d
        n.bounds = list(np.cumsum([a.shape[d] for a in arrays])[:-1])
        return _result(out, n)
    return _plain(out)


concat = concatenate = cat


def stack(tensors, dim=0):
    """Stack equally shaped tensors along a new dimension ``dim``."""
    tensors = [_as_tensor_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: 'tensors' must not be empty")
    shape0 = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != shape0:
            raise ValueError(f"stack: tensor {i} has shape {t.shape} but tensor 0 has shape {shape0}")
    d = _one_dim(dim, len(shape0) + 1, "stack")
    out = np.stack([t._data for t in tensors], axis=d)
    if _GM.enabled and any(t._rg for t in tensors):
        n = _node(_StackB, tuple(_edge(t) for t in tensors))
        n.dim = d
        return _result(out, n)
    return _plain(out)


def split(tensor, split_size_or_sections, dim=0):
    """Split into pieces of ``split_size`` (the last may be smaller) or of the listed sizes."""
    d = _one_dim(dim, tensor.ndim, "split")
    size = tensor.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != size:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)} but dim {d} has size {size}")
    else:
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split: 'split_size' must be positive, got {step}")
        sizes = [min(step, size - s) for s in range(0, size, step)] or [0]
    out = []
    start = 0
    pre = (slice(None),) * d
    for s in sizes:
        out.append(tensor[pre + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(tensor, chunks, dim=0):
    """Split into ``chunks`` pieces of size ceil(n / chunks) (fewer if n is small)."""
    if chunks <= 0:
        raise ValueError(f"chunk: 'chunks' must be positive, got {chunks}")
    d = _one_dim(dim, tensor.ndim, "chunk")
    step = max(1, -(-tensor.shape[d] // chunks))
    return split(tensor, step, d)


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input, pad, mode="constant", value=0.0):
    """Pad ``input``: ``pad`` lists (before, after) pairs starting from the LAST dimension,
    as ``torch.nn.functional.pad``. Modes: ``'constant'`` (``value``; negative amounts
    crop), ``'reflect'`` (mirror without repeating the edge; amounts < the dim size),
    ``'replicate'`` (repeat the edge) and ``'circular'`` (wrap around)."""
    x = input if isinstance(input, Tensor) else _plain(_asarray(input))
    if mode != "constant" and mode not in _PAD_MODES:
        raise ValueError(f"pad: 'mode' must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: 'pad' must have an even length of at most 2*{x.ndim}, got {tuple(pad)}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if mode != "constant":
        # gather along each padded axis with an index map; the backward scatter-adds
        for axis, (b, a) in enumerate(widths):
            if not (b or a):
                continue
            n = x.shape[axis]
            if b < 0 or a < 0:
                raise ValueError(f"pad: negative padding is only supported in 'constant' mode, got {tuple(pad)}")
            if mode == "reflect" and (b >= n or a >= n):
                raise ValueError(f"pad: reflect padding ({b}, {a}) must be smaller than the dim size {n} "
                                 f"(input shape {x.shape})")
            if mode == "circular" and (b > n or a > n):
                raise ValueError(f"pad: circular padding ({b}, {a}) must be at most the dim size {n} "
                                 f"(input shape {x.shape})")
            if n == 0:
                raise ValueError(f"pad: cannot pad an empty dim in {mode!r} mode (input shape {x.shape})")
            idx = np.pad(np.arange(n), (b, a), mode=_PAD_MODES[mode])
            x = x.index_select(axis, idx)
        return x
    data = x._data
    # crop negative amounts first
    crop = tuple(slice(max(-b, 0), data.shape[k] - max(-a, 0)) for k, (b, a) in enumerate(widths))
    if any(b < 0 or a < 0 for b, a in widths):
        x = x[crop]
        data = x._data
    pos = [(max(b, 0), max(a, 0)) for b, a in widths]
    out = np.pad(data, pos, mode="constant", constant_values=value)
    if _GM.enabled and x._rg:
        n = _node(_PadB, (_edge(x),))
        n.key = tuple(slice(b, b + s) for (b, _), s in zip(pos, data.shape))
        return _result(out, n)
    return _plain(out)


def where(condition, input, other):
    """``input`` where ``condition`` holds, else ``other`` (broadcasting)."""
    cond = condition._data if isinstance(condition, Tensor) else _asarray(condition)
    if cond.dtype != np.bool_:
        cond = cond.astype(bool)
    like = input if isinstance(input, Tensor) else (other if isinstance(other, Tensor) else None)
    a = _as_tensor_operand(input, like)
    b = _as_tensor_operand(other, like)
    out = np.where(cond, a._data, b._data)
    if _GM.enabled and (a._rg or b._rg):
        n = _node(_WhereB, (_edge(a), _edge(b)), (cond,))
        n.sa = a.shape
        n.sb = b.shape
        return _result(out, n)
    return _plain(out)


def _maxmin2(a, b, is_max):
    like = a if isinstance(a, Tensor) else (b if isinstance(b, Tensor) else None)
    ta = _as_tensor_operand(a, like)
    tb = _as_tensor_operand(b, like)
    out = (np.maximum if is_max else np.minimum)(ta._data, tb._data)
    if _GM.enabled and (ta._rg or tb._rg):
        n = _node(_MaxMinB, (_edge(ta), _edge(tb)), (ta._data, tb._data))
        n.is_max = is_max
        return _result(out, n)
    return _plain(out)


def maximum(input, other):
    """Elementwise maximum (ties split the gradient evenly)."""
    return _maxmin2(input, other, True)


def minimum(input, other):
    """Elementwise minimum (ties split the gradient evenly)."""
    return _maxmin2(input, other, False)


def matmul(input, other):
    a = input if isinstance(input, Tensor) else _plain(_asarray(input))
    return a.__matmul__(other)


# ----------------------------------------------------------------------------- activations used by nn


def leaky_relu(x, negative_slope=0.01):
    d = x._data
    out = np.where(d > 0, d, d * negative_slope).astype(d.dtype, copy=False)
    return _unary(x, out, LeakyReluBackward, (d, negative_slope))


def elu(x, alpha=1.0, scale=1.0):
    """scale * (x if x > 0 else alpha * (exp(x) - 1)); SELU is elu with its constants."""
    d = x._data
    if scale == 1.0 and _kernel_ok(d, _RUST_ACT):
        out = _act_ops.elu(d, alpha)
        return _unary(x, out, EluBackward, (d, out, alpha, scale))
    neg = scale * alpha * np.expm1(np.minimum(d, 0))
    out = np.where(d > 0, scale * d, neg).astype(d.dtype, copy=False)
    # d/dx: scale for x > 0, else scale*alpha*exp(x) = out + scale*alpha
    return _unary(x, out, EluBackward, (d, out, alpha, scale))


def gelu(x, approximate="none"):
    d = x._data
    if approximate in ("none", "tanh") and _kernel_ok(d, 0):
        return _unary(x, _act_ops.gelu(d, approximate), KernelGeluBackward, (d, approximate))
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        out = 0.5 * d * (1 + np.tanh(c * (d + 0.044715 * d**3)))
        return _unary(x, out.astype(d.dtype, copy=False), GeluTanhBackward, (d,))
    if approximate != "none":
        raise ValueError(f"gelu: 'approximate' must be 'none' or 'tanh', got {approximate!r}")
    out = 0.5 * d * (1 + _erf(d / math.sqrt(2.0)))
    return _unary(x, out.astype(d.dtype, copy=False), GeluBackward, (d,))


def silu(x):
    d = x._data
    if _kernel_ok(d, _RUST_ACT):
        return _unary(x, _act_ops.silu(d), KernelSiluBackward, (d,))
    with np.errstate(over="ignore"):
        s = (1.0 / (1.0 + np.exp(-d))).astype(d.dtype, copy=False)
    return _unary(x, d * s, SiluBackward, (d, s))


def softplus(x, beta=1.0, threshold=20.0):
    d = x._data
    if beta != 0 and _kernel_ok(d, _RUST_ACT):
        return _unary(x, _act_ops.softplus(d, beta, threshold), SoftplusBackward, (d, beta, threshold))
    z = d * beta
    soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta
    out = np.where(z > threshold, d, soft).astype(d.dtype, copy=False)
    return _unary(x, out, SoftplusBackward, (d, beta, threshold))


def logsigmoid(x):
    d = x._data
    out = (np.minimum(d, 0) - np.log1p(np.exp(-np.abs(d)))).astype(d.dtype, copy=False)
    return _unary(x, out, LogSigmoidBackward, (d,))


def scale_by_mask(x, mask):
    """``x * mask`` for a constant array ``mask`` (dropout)."""
    out = x._data * mask
    if _GM.enabled and x._rg:
        return _result(out, _node(_FixedB, (_edge(x),), (mask,)))
    return _plain(out)
