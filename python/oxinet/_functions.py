"""Top-level functions mirroring Tensor methods (``oxinet.exp(x)``, ``oxinet.sum(x, dim=1)``...)."""

from __future__ import annotations

from oxinet.tensor import Tensor, _plain
import numpy as np


def _method(name):
    def fn(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            input = _plain(np.asarray(input))
        return getattr(input, name)(*args, **kwargs)

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"``oxinet.{name}(x, ...)`` is ``x.{name}(...)``; see :meth:`oxinet.Tensor.{name}`."
    return fn


_NAMES = (
    "exp log log1p sqrt rsqrt abs sin cos tanh sigmoid relu square reciprocal neg sign floor ceil round "
    "clamp clip sum mean amax amin max min var std logsumexp norm softmax log_softmax argmax argmin "
    "reshape flatten permute transpose unsqueeze squeeze expand flip unbind index_select gather "
    "masked_fill isnan isinf isfinite allclose equal eq ne lt le gt ge mul add sub div pow t movedim "
    "any all cumsum prod tril triu sort topk"
).split()

for _n in _NAMES:
    globals()[_n] = _method(_n)

__all__ = list(_NAMES)
