"""Convolution, pooling, unpooling, resizing and fold/unfold modules (``torch.nn`` names,
constructor arguments, parameter names and shapes, and default initialisations).

Every module calls a function of :mod:`oxinet.nn.functional`, which runs the Rust kernels
of :mod:`oxinet.ops` forward and backward.
"""

from __future__ import annotations

import math

import numpy as np

from oxinet.nn import _spatial_fn as SF
from oxinet.nn import init
from oxinet.nn.module import Module
from oxinet.nn.parameter import Parameter
from oxinet.tensor import _resolve_dtype, get_default_dtype, pad as _pad

__all__ = [
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d",
    "MaxUnpool1d", "MaxUnpool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "Fold", "Unfold",
]


def _dtype(dtype):
    d = _resolve_dtype(dtype, op="layer")
    return get_default_dtype() if d is None else d


def _tuple(v, n, name, cls):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{cls}: '{name}' must be an int or a tuple of {n} ints, got {v!r}")
        return tuple(int(a) for a in v)
    return (int(v),) * n


_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", output_padding=0, device=None, dtype=None):
        super().__init__()
        cls, nd = type(self).__name__, self._nd
        if groups < 1:
            raise ValueError(f"{cls}: 'groups' must be a positive integer, got {groups}")
        if in_channels % groups:
            raise ValueError(f"{cls}: 'in_channels' ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{cls}: 'out_channels' ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"{cls}: 'padding_mode' must be one of {_PAD_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, nd, "kernel_size", cls)
        self.stride = _tuple(stride, nd, "stride", cls)
        self.dilation = _tuple(dilation, nd, "dilation", cls)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{cls}: 'padding' must be 'same', 'valid', an int or a tuple, got {padding!r}")
            if self._transposed:
                raise ValueError(f"{cls}: 'padding' must be an int or a tuple of {nd} ints, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{cls}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _tuple(padding, nd, "padding", cls)
        self.output_padding = _tuple(output_padding, nd, "output_padding", cls)
        self.groups = groups
        self.transposed = self._transposed
        self.padding_mode = padding_mode
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{cls}: only 'zeros' padding_mode is supported for transposed convolutions")
        d = _dtype(dtype)
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, d))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), d))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # PyTorch: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), same bound for bias
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _explicit_padding(self, input):
        """Pad with reflect/replicate/circular before a convolution with padding 0."""
        if self.padding == "valid":
            return input
        if self.padding == "same":
            amounts = []
            for k, d in zip(reversed(self.kernel_size), reversed(self.dilation)):
                total = d * (k - 1)
                amounts += [total // 2, total - total // 2]
        else:
            amounts = []
            for p in reversed(self.padding):
                amounts += [p, p]
        return _pad(input, amounts, mode=self.padding_mode)

    def forward(self, input):
        f = {1: SF.conv1d, 2: SF.conv2d, 3: SF.conv3d}[self._nd]
        if self.padding_mode != "zeros":
            return f(self._explicit_padding(input), self.weight, self.bias, self.stride, 0, self.dilation,
                     self.groups)
        return f(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L). weight (C_out, C_in/groups, k), bias (C_out,),
    both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_in/groups * k (PyTorch)."""

    _nd = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W). weight (C_out, C_in/groups, kh, kw), bias (C_out,).
    padding: int, pair, 'valid' or 'same'; padding_mode 'zeros', 'reflect', 'replicate' or
    'circular'; groups = in_channels gives a depthwise convolution (follow it with a 1x1
    Conv2d for a depthwise-separable block)."""

    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)


class Conv3d(_ConvNd):
    """3-D convolution over (N, C_in, D, H, W). weight (C_out, C_in/groups, kd, kh, kw)."""

    _nd = 3

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, dtype=dtype)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        nd = self._nd
        size = tuple(output_size)[-nd:]
        sp = tuple(input.shape[-nd:])
        op = []
        for i in range(nd):
            base = ((sp[i] - 1) * self.stride[i] - 2 * self.padding[i]
                    + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = size[i] - base
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"{type(self).__name__}: requested 'output_size' {tuple(output_size)} is not "
                                 f"reachable from input shape {tuple(input.shape)}")
            op.append(extra)
        return tuple(op)

    def forward(self, input, output_size=None):
        f = {1: SF.conv_transpose1d, 2: SF.conv_transpose2d, 3: SF.conv_transpose3d}[self._nd]
        return f(input, self.weight, self.bias, self.stride, self.padding, self._output_padding(input, output_size),
                 self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution. weight (C_in, C_out/groups, k), bias (C_out,)."""

    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution. weight (C_in, C_out/groups, kh, kw), bias (C_out,);
    fan_in for the initialisation is C_out/groups * kh * kw (PyTorch's rule)."""

    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    _nd = 3


# ----------------------------------------------------------------------------- pooling


class _MaxPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        f = SF.max_pool1d if self._nd == 1 else SF.max_pool2d
        return f(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                 self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    _nd = 1


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling; ``return_indices=True`` makes forward return (output, indices)
    for :class:`MaxUnpool2d`."""

    _nd = 2


class AvgPool1d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad

    def forward(self, input):
        return SF.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return SF.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _Adaptive(Module):
    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_Adaptive):
    def __init__(self, output_size):
        super().__init__(output_size)

    def forward(self, input):
        return SF.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_Adaptive):
    """Average pooling to a fixed (OH, OW) whatever the input size (``AdaptiveAvgPool2d(1)``
    is global average pooling)."""

    def __init__(self, output_size):
        super().__init__(output_size)

    def forward(self, input):
        return SF.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool1d(_Adaptive):
    def forward(self, input):
        return SF.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_Adaptive):
    def forward(self, input):
        return SF.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class GlobalAvgPool2d(Module):
    """Mean over H, W: (N, C, H, W) -> (N, C) (``keepdim=True``: (N, C, 1, 1))."""

    def __init__(self, keepdim=False):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, input):
        return SF.global_avg_pool2d(input, self.keepdim)


class GlobalMaxPool2d(GlobalAvgPool2d):
    """Max over H, W: (N, C, H, W) -> (N, C) (``keepdim=True``: (N, C, 1, 1))."""

    def forward(self, input):
        return SF.global_max_pool2d(input, self.keepdim)


class _MaxUnpool(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def forward(self, input, indices, output_size=None):
        f = SF.max_unpool1d if self._nd == 1 else SF.max_unpool2d
        return f(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpool):
    _nd = 1


class MaxUnpool2d(_MaxUnpool):
    """Partial inverse of MaxPool2d: forward(input, indices, output_size=None)."""

    _nd = 2


class Upsample(Module):
    """Resize by ``scale_factor`` or to ``size``; mode 'nearest', 'linear' or 'bilinear'."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, input):
        return SF.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                              self.recompute_scale_factor)

    def extra_repr(self):
        if self.scale_factor is not None:
            return f"scale_factor={self.scale_factor}, mode={self.mode!r}"
        return f"size={self.size}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "bilinear", align_corners=True)


class Unfold(Module):
    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input):
        return SF.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size = output_size
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input):
        return SF.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")
