"""Functional ops on NumPy arrays: arrays in, arrays out.

Each forward op that has parameters to learn comes with a ``*_backward``. Argument
names and meanings follow ``torch.nn.functional`` / ``torchvision.ops`` where those
have the op. float32 is the default dtype and float64 is kept; other dtypes raise
``TypeError`` naming the argument.

Families (one module each): ``linalg`` (matmul, gemm), ``conv`` (conv1d/2d/3d,
transposed, im2col/col2im), ``pool`` and ``interpolate``, ``rnn`` (cells and fused
RNN/GRU/LSTM sequences), ``activation`` (softmax family and nonlinearities),
``attention``, ``embedding``, ``loss`` (fused cross-entropy and friends), ``norm``
(batch normalisation), ``boxes``
(IoU, NMS, RoI pooling).
"""

from types import ModuleType as _ModuleType
from oxinet.ops.linalg import *  # noqa: F401,F403
from oxinet.ops.conv import *  # noqa: F401,F403
from oxinet.ops.pool import *  # noqa: F401,F403
from oxinet.ops.interpolate import *  # noqa: F401,F403
from oxinet.ops.rnn import *  # noqa: F401,F403
from oxinet.ops.activation import *  # noqa: F401,F403
from oxinet.ops.attention import *  # noqa: F401,F403
from oxinet.ops.embedding import *  # noqa: F401,F403
from oxinet.ops.loss import *  # noqa: F401,F403
from oxinet.ops.norm import *  # noqa: F401,F403
from oxinet.ops.boxes import *  # noqa: F401,F403
from oxinet.ops import boxes

__all__ = sorted(
    name for name, value in globals().items()
    if not name.startswith("_") and not isinstance(value, _ModuleType)
) + ["boxes"]
