"""Layers that need no kernel of their own: Linear, Identity, Flatten, Unflatten,
activations, dropout and normalisation (PyTorch's names, arguments and initialisation)."""

from __future__ import annotations

import math

import numpy as np

from oxinet.nn import functional as F
from oxinet.nn import init
from oxinet.nn.module import Module
from oxinet.nn.parameter import Parameter
from oxinet.tensor import _resolve_dtype, get_default_dtype


def _dtype(dtype):
    d = _resolve_dtype(dtype, op="layer")
    return get_default_dtype() if d is None else d


# ----------------------------------------------------------------------------- basic


class Identity(Module):
    """Returns its input (extra constructor arguments are ignored)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b. weight (out_features, in_features) and bias (out_features,) start as
    U(-1/sqrt(in_features), 1/sqrt(in_features)) like PyTorch (kaiming_uniform with a=sqrt(5))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f"Linear: in_features and out_features must be >= 0, got {in_features}, {out_features}")
        self.in_features = in_features
        self.out_features = out_features
        d = _dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), d))
        if bias:
            self.bias = Parameter(np.empty((out_features,), d))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """y_k = x1^T A_k x2 + b_k with weight (out, in1, in2), PyTorch's initialisation."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        d = _dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in1_features, in2_features), d))
        bound = 1 / math.sqrt(in1_features)
        init.uniform_(self.weight, -bound, bound)
        if bias:
            self.bias = Parameter(np.empty((out_features,), d))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (default: all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input):
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# ----------------------------------------------------------------------------- activations


class _Act(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace


class ReLU(_Act):
    def forward(self, input):
        return input.relu()


class ReLU6(_Act):
    def forward(self, input):
        return F.relu6(input)


class Sigmoid(Module):
    def forward(self, input):
        return input.sigmoid()


class Tanh(Module):
    def forward(self, input):
        return input.tanh()


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """Leaky ReLU with a learned slope: one shared (num_parameters=1) or one per channel."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = Parameter(np.full((num_parameters,), init, _dtype(dtype)))

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class CELU(ELU):
    def forward(self, input):
        return F.celu(input, self.alpha)


class SELU(_Act):
    def forward(self, input):
        return F.selu(input)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: 'approximate' must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(_Act):
    def forward(self, input):
        return F.silu(input)


Swish = SiLU


class Mish(_Act):
    def forward(self, input):
        return F.mish(input)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class LogSigmoid(Module):
    def forward(self, input):
        return F.logsigmoid(input)


class Hardtanh(Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        self.min_val, self.max_val = min_val, max_val

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Softsign(Module):
    def forward(self, input):
        return F.softsign(input)


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input):
        return F.log_softmax(input, self.dim)


class Softmin(Softmax):
    def forward(self, input):
        return F.softmin(input, self.dim)


class Maxout(Module):
    """Maxout activation: the maximum over groups of ``pool_size`` consecutive channels of
    ``dim`` (put it after a Linear/Conv with pool_size times the wanted outputs)."""

    def __init__(self, pool_size: int, dim: int = 1):
        super().__init__()
        if pool_size <= 0:
            raise ValueError(f"Maxout: 'pool_size' must be positive, got {pool_size}")
        self.pool_size = pool_size
        self.dim = dim

    def forward(self, input):
        return F.maxout(input, self.pool_size, self.dim)

    def extra_repr(self):
        return f"pool_size={self.pool_size}, dim={self.dim}"


# ----------------------------------------------------------------------------- dropout


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 and 1, but got p={p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Inverted dropout in training mode, identity in eval mode."""

    def forward(self, input):
        return F.dropout(input, self.p, self.training)


class Dropout1d(_DropoutNd):
    def forward(self, input):
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Spatial dropout: whole channels of (N, C, H, W) inputs are zeroed."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training)


class AlphaDropout(_DropoutNd):
    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


# ----------------------------------------------------------------------------- normalisation


class _NormBase(Module):
    _expected_dims: tuple = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        d = _dtype(dtype)
        if affine:
            self.weight = Parameter(np.ones((num_features,), d))
            self.bias = Parameter(np.zeros((num_features,), d))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros((num_features,), d))
            self.register_buffer("running_var", np.ones((num_features,), d))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, x):
        if x.ndim not in self._expected_dims:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{n}-D' for n in self._expected_dims)} "
                             f"input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: input has {x.shape[1]} channels (shape {tuple(x.shape)}) "
                             f"but num_features is {self.num_features}")

    def _momentum(self):
        """The EWMA factor for this step (None momentum = cumulative average)."""
        if self.training and self.track_running_stats:
            self.num_batches_tracked._data[...] += 1
            if self.momentum is None:
                return 1.0 / float(self.num_batches_tracked._data)
        return 0.0 if self.momentum is None else self.momentum

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _fusable_bn = True

    def forward(self, input):
        return self._forward(input, None, (-1.0, 1.0))

    def _forward(self, input, activation, bounds):
        self._check_input(input)
        m = self._momentum()
        use_batch = self.training or not self.track_running_stats
        track = self.training and self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if (track or not use_batch) else None,
            self.running_var if (track or not use_batch) else None,
            self.weight, self.bias, use_batch, m, self.eps, activation=activation, hardtanh_bounds=bounds,
        )


def _act_spec(act):
    """(activation, bounds) for the activations batch_norm can fuse, else None."""
    t = type(act)
    if t is ReLU and t.forward is ReLU.forward:
        return "relu", (0.0, 0.0)
    if t is ReLU6:
        return "relu6", (0.0, 6.0)
    if t is Hardtanh and act.min_val <= act.max_val:
        return "hardtanh", (float(act.min_val), float(act.max_val))
    return None


def fused_bn_act(bn, act, input):
    """``act(bn(input))`` in one fused pass when ``bn`` is a BatchNorm layer, ``act`` a ReLU,
    ReLU6 or Hardtanh and neither has hooks (the result and gradients are the same as
    the two calls'); None when they cannot be fused."""
    if not isinstance(bn, _BatchNorm) or type(bn).forward is not _BatchNorm.forward:
        return None
    spec = _act_spec(act)
    if spec is None:
        return None
    for m in (bn, act):
        d = m.__dict__
        if d["_forward_pre_hooks"] or d["_forward_hooks"]:
            return None
    return bn._forward(input, spec[0], spec[1])


def bn_act(bn, act, input):
    """``act(bn(input))``, fused into one pass when :func:`fused_bn_act` can."""
    out = fused_bn_act(bn, act, input)
    return act(bn(input)) if out is None else out


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs (course F24). Training uses batch
    statistics and updates ``running_mean``/``running_var`` as an EWMA:
    ``running = (1 - momentum) * running + momentum * batch_stat`` (unbiased variance);
    eval mode normalises with the running statistics."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Spatial batch normalisation of (N, C, H, W) inputs: statistics per channel over N, H, W.
    See :class:`BatchNorm1d` for the running statistics."""

    _expected_dims = (4,)


class BatchNorm3d(_BatchNorm):
    _expected_dims = (5,)


class _InstanceNorm(_NormBase):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)

    def forward(self, input):
        self._check_input(input)
        m = self._momentum()
        use_input = self.training or not self.track_running_stats
        return F.instance_norm(
            input,
            self.running_mean if self.track_running_stats else None,
            self.running_var if self.track_running_stats else None,
            self.weight, self.bias, use_input, m, self.eps,
        )


class InstanceNorm1d(_InstanceNorm):
    _expected_dims = (3,)


class InstanceNorm2d(_InstanceNorm):
    """Normalise each channel of each (N, C, H, W) sample over H, W (style transfer)."""

    _expected_dims = (4,)


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims; elementwise affine parameters
    of that shape (ones and zeros)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        d = _dtype(dtype)
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, d))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, d))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalise groups of channels of each sample; per-channel affine (ones and zeros)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels {num_channels} must be divisible by num_groups {num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        d = _dtype(dtype)
        if affine:
            self.weight = Parameter(np.ones((num_channels,), d))
            self.bias = Parameter(np.zeros((num_channels,), d))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input):
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: input of shape {tuple(input.shape)} does not have "
                             f"{self.num_channels} channels in dim 1")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


# ----------------------------------------------------------------------------- padding


class _PadNd(Module):
    _mode = "constant"
    _dims = 2

    def __init__(self, padding, value: float = 0.0):
        super().__init__()
        if isinstance(padding, int):
            padding = (padding,) * (2 * self._dims)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 2 * self._dims:
            raise ValueError(f"{type(self).__name__}: 'padding' must be an int or {2 * self._dims} ints, got {padding}")
        self.padding = padding
        self.value = value

    def forward(self, input):
        return F.pad(input, self.padding, self._mode, self.value)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self._mode == "constant" and self.value else "")


class ZeroPad1d(_PadNd):
    _dims = 1


class ZeroPad2d(_PadNd):
    """Pad the last two dims with zeros; padding (left, right, top, bottom) or one int."""


class ConstantPad1d(_PadNd):
    _dims = 1

    def __init__(self, padding, value):
        super().__init__(padding, value)


class ConstantPad2d(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding, value)


class ReflectionPad1d(_PadNd):
    _mode, _dims = "reflect", 1


class ReflectionPad2d(_PadNd):
    """Mirror padding of the last two dims (style transfer nets use it before convolutions)."""

    _mode = "reflect"


class ReplicationPad1d(_PadNd):
    _mode, _dims = "replicate", 1


class ReplicationPad2d(_PadNd):
    _mode = "replicate"


class CircularPad2d(_PadNd):
    _mode = "circular"
