"""Flatten parameters into one vector and back (course F16's θ)."""

from __future__ import annotations

import numpy as np

from oxinet.tensor import Tensor


def parameters_to_vector(parameters) -> Tensor:
    """Concatenate the flattened parameters into one 1-D Tensor (a copy, outside the graph)."""
    arrays = [p._data.reshape(-1) for p in parameters]
    return Tensor(np.concatenate(arrays) if arrays else np.zeros(0, np.float32))


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters (in place)."""
    v = vec._data if isinstance(vec, Tensor) else np.asarray(vec)
    if v.ndim != 1:
        raise ValueError(f"vector_to_parameters: 'vec' must be 1-D, got shape {v.shape}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if v.size != total:
        raise ValueError(f"vector_to_parameters: 'vec' has {v.size} elements but the parameters hold {total}")
    i = 0
    for p in params:
        n = p.numel()
        p._data[...] = v[i:i + n].reshape(p.shape)
        i += n
