"""All parameters of an optimizer as one float64 vector, for the full-batch methods
(L-BFGS, Newton, Levenberg-Marquardt). The class using it sets ``self._params``."""

from __future__ import annotations

import numpy as np


class FlatParams:
    def _flat(self):
        return np.concatenate([p._data.reshape(-1).astype(np.float64) for p in self._params])

    def _set(self, flat):
        i = 0
        for p in self._params:
            n = p.numel()
            p._data[...] = flat[i:i + n].reshape(p.shape)
            i += n

    def _grad(self):
        return np.concatenate([
            (p.grad._data if p.grad is not None else np.zeros_like(p._data)).reshape(-1).astype(np.float64)
            for p in self._params
        ])

    def _add(self, t, d):
        """θ += t d, in each parameter's own dtype."""
        i = 0
        for p in self._params:
            n = p.numel()
            p._data += (t * d[i:i + n]).reshape(p.shape).astype(p.dtype)
            i += n
