"""``oxinet.nn``: modules, layers, losses, initialisation (``torch.nn``-shaped).

Layers wrapping the Rust kernels live in ``conv`` (convolution, pooling, unpooling,
resizing, fold/unfold), ``rnn`` (Embedding, RNN/GRU/LSTM and cells) and ``transformer``
(MultiheadAttention, Transformer layers, positional encoding); each sits on an op pair
``f`` / ``f_backward`` of :mod:`oxinet.ops` through an :class:`oxinet.autograd.Function`
(``nn/_spatial_fn.py``, ``nn/_seq_fn.py``, ``nn/_loss_fn.py``).
"""

from oxinet.nn.parameter import Buffer, Parameter
from oxinet.nn.module import Module
from oxinet.nn.containers import ModuleDict, ModuleList, ParameterList, Sequential
from oxinet.nn.layers import (
    ELU, CELU, GELU, SELU, AlphaDropout, BatchNorm1d, BatchNorm2d, BatchNorm3d, Bilinear, Dropout,
    Dropout1d, Dropout2d, Flatten, GroupNorm, Hardtanh, Identity, InstanceNorm1d, InstanceNorm2d,
    LayerNorm, LeakyReLU, Linear, LogSigmoid, LogSoftmax, Maxout, Mish, PReLU, ReLU, ReLU6, Sigmoid,
    SiLU, Softmax, Softmin, Softplus, Softsign, Swish, Tanh, Unflatten,
    CircularPad2d, ConstantPad1d, ConstantPad2d, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
    ReplicationPad2d, ZeroPad1d, ZeroPad2d,
)
from oxinet.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, DiceLoss, FocalLoss,
    HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss, MSELoss, MultiMarginLoss,
    NLLLoss, SmoothL1Loss, TripletMarginLoss,
)
from oxinet.nn.loss import CTCLoss
from oxinet.nn.conv import *  # noqa: F401,F403
from oxinet.nn.rnn import *  # noqa: F401,F403
from oxinet.nn.transformer import *  # noqa: F401,F403
from oxinet.nn import conv as _conv, rnn as _rnn, transformer as _transformer
from oxinet.nn import functional, init, utils

__all__ = [
    "Parameter", "Buffer", "Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
    "Identity", "Linear", "Bilinear", "Flatten", "Unflatten",
    "ReLU", "ReLU6", "Sigmoid", "Tanh", "LeakyReLU", "PReLU", "ELU", "CELU", "SELU", "GELU", "SiLU",
    "Swish", "Mish", "Softplus", "LogSigmoid", "Hardtanh", "Softsign", "Softmax", "LogSoftmax",
    "Softmin", "Maxout",
    "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "LayerNorm",
    "GroupNorm",
    "ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d", "ReflectionPad2d",
    "ReplicationPad1d", "ReplicationPad2d", "CircularPad2d",
    "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss", "NLLLoss",
    "CrossEntropyLoss", "MultiMarginLoss", "TripletMarginLoss", "CosineEmbeddingLoss",
    "MarginRankingLoss", "HingeEmbeddingLoss", "KLDivLoss", "FocalLoss", "DiceLoss",
    "functional", "init", "utils",
] + list(_conv.__all__) + list(_rnn.__all__) + list(_transformer.__all__) + ["CTCLoss"]
