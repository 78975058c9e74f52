"""The autograd graph: nodes that know how to push a gradient back to their inputs, and the
engine that runs them in reverse topological order.

A node is created by every differentiable op whose inputs require grad. ``node.inputs``
holds one *edge* per differentiable input: the input's own node when the input was itself
computed, the input Tensor when it is a leaf, or None when it needs no gradient. The graph
holds no intermediate Tensor, only nodes and the arrays they saved for their backward, so
those arrays are freed as soon as the graph is (after ``backward()`` without
``retain_graph``, or when the output goes away).

``node.backward(g)`` gets the gradient of the loss w.r.t. the node's output (a NumPy
array) and returns a tuple with one array (or None) per entry of ``node.inputs``.
"""

from __future__ import annotations

import numpy as np

from oxinet.ops._checks import empty as _empty

_Tensor = None  # oxinet.tensor.Tensor, set when that module is imported


class _Freed:
    __slots__ = ()

    def __repr__(self):
        return "<freed>"


FREED = _Freed()


class Node:
    """Base of all graph nodes (``Tensor.grad_fn``).

    Subclasses set ``inputs`` (edges, see the module doc), put arrays they need in backward
    in ``saved`` (a tuple; None when they need nothing, so their graph can be run twice like
    PyTorch's), and may add slots for metadata such as shapes.
    """

    __slots__ = ("inputs", "saved", "hooks")
    _is_node = True
    # True when every array ``backward`` returns is newly allocated and referenced by
    # nothing else (no input's array, no saved value, no other output): a leaf's first
    # gradient of a backward pass then becomes its ``.grad`` without a copy
    fresh_grads = False

    def __init__(self, inputs=(), saved=None):
        self.inputs = inputs
        self.saved = saved
        self.hooks = None

    def backward(self, g):  # pragma: no cover - abstract
        raise NotImplementedError

    def name(self) -> str:
        n = type(self).__name__.lstrip("_")
        return n[:-1] + "Backward" if n.endswith("B") else n

    @property
    def next_functions(self):
        """The input edges as ``(node or leaf Tensor or None, 0)`` pairs, like PyTorch."""
        return tuple((e, 0) for e in self.inputs)

    def register_hook(self, fn):
        if self.hooks is None:
            self.hooks = []
        self.hooks.append(fn)

    def __repr__(self):
        return f"<{self.name()}>"


class MultiGrad:
    """Gradients for the outputs of a node with several outputs (one slot per output)."""

    __slots__ = ("grads",)

    def __init__(self, grads):
        self.grads = grads

    def __add__(self, other):
        out = list(self.grads)
        for i, g in enumerate(other.grads):
            if g is not None:
                out[i] = g if out[i] is None else out[i] + g
        return MultiGrad(out)


class IndexGrad:
    """The gradient of an indexing op: ``values`` scattered at ``key`` into zeros of ``shape``.

    Kept unmaterialised so that many slices of one tensor (``x[:, t]`` in a loop, ``unbind``,
    ``split``) accumulate into one buffer in place instead of each allocating a full array.
    """

    __slots__ = ("key", "values", "shape", "dtype", "advanced")

    def __init__(self, key, values, shape, dtype, advanced):
        self.key = key
        self.values = values
        self.shape = shape
        self.dtype = dtype
        self.advanced = advanced

    def scatter_into(self, arr):
        if self.advanced:
            np.add.at(arr, self.key, self.values)
        else:
            arr[self.key] += self.values
        return arr

    def materialize(self):
        out = np.zeros(self.shape, self.dtype)
        if self.advanced:
            np.add.at(out, self.key, self.values)
        else:
            out[self.key] = self.values
        return out


def _add_new(a, b):
    """a + b in a new array; in recycled memory when large and of one shape and dtype
    (a fresh large buffer pays a page fault per page on its first write)."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype:
        return np.add(a, b, out=_empty(a.shape, a.dtype))
    return a + b


def _accumulate(prev, g, owned):
    """prev + g, in place when ``prev`` is a buffer the engine created (id in ``owned``)."""
    if type(prev) is MultiGrad:
        return prev + g
    if type(prev) is IndexGrad:
        prev = prev.materialize()
        owned.add(id(prev))
    elif id(prev) not in owned or prev.shape != getattr(g, "shape", None) or not prev.flags.writeable:
        if type(g) is IndexGrad:
            prev = np.array(prev, dtype=np.result_type(prev.dtype, g.dtype), copy=True)
            owned.add(id(prev))
        else:
            out = _add_new(prev, g)
            owned.add(id(out))
            return out
    if type(g) is IndexGrad:
        return g.scatter_into(prev)
    if np.result_type(prev.dtype, g.dtype) != prev.dtype:
        out = prev + g
        owned.add(id(out))
        return out
    prev += g
    return prev


class SelectBackward(Node):
    """Output ``index`` of a node with ``n`` outputs."""

    __slots__ = ("index", "n")

    def __init__(self, parent, index, n):
        self.inputs = (parent,)
        self.saved = None
        self.hooks = None
        self.index = index
        self.n = n

    def backward(self, g):
        grads = [None] * self.n
        grads[self.index] = g
        return (MultiGrad(grads),)


def _dependencies(roots):
    """For every node reachable from ``roots``: how many edges point at it."""
    deps = {}
    stack = []
    for r in roots:
        if r not in deps:
            deps[r] = 0
            stack.append(r)
    while stack:
        for e in stack.pop().inputs:
            if e is not None and e._is_node:
                if e in deps:
                    deps[e] += 1
                else:
                    deps[e] = 1
                    stack.append(e)
    return deps


def _call_hooks(hooks, g):
    for h in hooks:
        r = h(_Tensor._make(g))
        if r is not None:
            g = r._data if isinstance(r, _Tensor) else np.asarray(r)
    return g


def accumulate_leaf(t, g, fresh=False):
    """Add ``g`` into the leaf tensor ``t``'s ``.grad`` (created on first use). ``fresh``:
    nothing else holds ``g`` (see ``Node.fresh_grads``), so it may become ``.grad`` itself."""
    data = t._data
    if type(g) is IndexGrad:
        if not t._hooks:
            if t.grad is None:
                t.grad = _Tensor._make(np.zeros(data.shape, data.dtype))
            g.scatter_into(t.grad._data)
            return
        g = g.materialize()
    if t._hooks:
        g = _call_hooks(t._hooks, g)
    if g.shape != data.shape:
        try:
            g = np.broadcast_to(g, data.shape)
        except ValueError:
            raise RuntimeError(
                f"backward: gradient of shape {g.shape} does not fit the leaf of shape {data.shape}"
            ) from None
    grad = t.grad
    if grad is None:
        if (fresh and type(g) is np.ndarray and g.dtype == data.dtype and g.shape == data.shape
                and g.flags.c_contiguous and g.flags.writeable):
            t.grad = _Tensor._make(g)
            return
        # a private copy (g may be shared with other leaves or the caller), in recycled
        # memory when large: parameter gradients are dropped by zero_grad() every step, so
        # the next step's copies reuse already-mapped pages
        buf = _empty(data.shape, data.dtype)
        np.copyto(buf, g, casting="unsafe")
        t.grad = _Tensor._make(buf)
    else:
        grad._data += g


def run_backward(roots, grads, retain_graph: bool, capture=None):
    """Push ``grads`` (arrays, one per root Tensor) back through the graph.

    Leaves get their ``.grad`` accumulated, unless ``capture`` (a dict id(leaf) -> None)
    is given: then only the gradients of those leaves are collected into it and no
    ``.grad`` changes (``oxinet.autograd.grad``).
    """
    pending = {}
    owned = set()
    nodes = []
    for t, g in zip(roots, grads):
        fn = t.grad_fn
        if fn is None:
            if not t._rg:
                raise RuntimeError(
                    "backward: element 0 of tensors does not require grad and does not have a grad_fn"
                )
            _deliver_leaf(t, g, capture)
            continue
        if fn in pending:
            pending[fn] = _accumulate(pending[fn], g, owned)
        else:
            pending[fn] = g
            nodes.append(fn)
    if not pending:
        return
    deps = _dependencies(nodes)
    ready = [n for n in nodes if deps[n] == 0]
    pop = pending.pop
    while ready:
        node = ready.pop()
        g = pop(node, None)
        if g is None:  # no gradient reached this node: only release its inputs
            for e in node.inputs:
                if e is not None and e._is_node:
                    d = deps[e] - 1
                    deps[e] = d
                    if d == 0:
                        ready.append(e)
            continue
        if type(g) is IndexGrad:
            g = g.materialize()
        elif owned:
            owned.discard(id(g))  # backward may hand g itself to several inputs: no longer ours
        if node.saved is FREED:
            raise RuntimeError(
                f"backward: trying to backward through the graph a second time ({node.name()}), "
                "but its saved values were freed by the first backward(); "
                "pass retain_graph=True to the first backward() to keep them"
            )
        if node.hooks:
            g = _call_hooks(node.hooks, g)
        in_grads = node.backward(g)
        if not retain_graph and node.saved is not None:
            node.saved = FREED
        fresh = node.fresh_grads
        for e, ig in zip(node.inputs, in_grads):
            if e is None:
                continue
            if e._is_node:
                if ig is not None:
                    prev = pending.get(e)
                    pending[e] = ig if prev is None else _accumulate(prev, ig, owned)
                d = deps[e] - 1
                deps[e] = d
                if d == 0:
                    ready.append(e)
            elif ig is not None:
                # an array handed to two inputs is not fresh for either
                _deliver_leaf(e, ig, capture, fresh and sum(x is ig for x in in_grads) == 1)


def _deliver_leaf(t, g, capture, fresh=False):
    if capture is None:
        accumulate_leaf(t, g, fresh)
    elif id(t) in capture:
        if type(g) is IndexGrad:
            g = g.materialize()
        prev = capture[id(t)]
        capture[id(t)] = g if prev is None else prev + g
