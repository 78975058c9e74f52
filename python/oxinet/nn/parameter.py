"""``Parameter``: a leaf Tensor that a Module registers as learnable."""

from __future__ import annotations

import numpy as np

from oxinet.tensor import Tensor, _to_array


class Parameter(Tensor):
    """A Tensor that requires grad by default and is registered when assigned to a Module
    attribute. ``Parameter(tensor_or_array)`` shares the data of a Tensor or a float NumPy
    array (no copy)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            arr = np.empty((0,), np.float32)
        elif isinstance(data, Tensor):
            arr = data._data
        elif isinstance(data, np.ndarray):
            arr = data
        else:
            arr = _to_array(data)
        super().__init__(arr)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        new = Parameter(self._data.copy(), requires_grad=self._rg)
        if self.grad is not None:
            new.grad = Tensor(self.grad._data.copy())
        memo[id(self)] = new
        return new

    def __reduce_ex__(self, protocol):
        return (Parameter, (self._data, self._rg))


class Buffer(Tensor):
    """Marks a Tensor to be registered as a buffer when assigned to a Module attribute."""

    __slots__ = ()

    def __init__(self, data, persistent=True):
        super().__init__(data._data if isinstance(data, Tensor) else np.asarray(data))
