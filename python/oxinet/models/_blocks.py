"""Small building blocks shared by the model families (all torch.nn-named layers)."""

from __future__ import annotations

from oxinet import nn


def _act(name: str | None):
    if name is None or name == "none":
        return nn.Identity()
    table = {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
             "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}
    if name not in table:
        raise ValueError(f"activation: 'act' must be one of {sorted(table)} or None, got {name!r}")
    return table[name]()


def conv_bn_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                padding: int | None = None, groups: int = 1, act: str | None = "relu",
                bn_eps: float = 1e-5) -> nn.Sequential:
    """Conv2d (no bias) -> BatchNorm2d -> activation; ``padding`` defaults to ``kernel_size // 2``."""
    if padding is None:
        padding = kernel_size // 2
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                        groups=groups, bias=False),
              nn.BatchNorm2d(out_channels, eps=bn_eps)]
    if act is not None:
        layers.append(_act(act))
    return nn.Sequential(*layers)


def check_positive(value, name: str, who: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who}: '{name}' must be a positive int, got {value!r}")
    return value


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output length of a convolution/pooling window along one axis (PyTorch's formula)."""
    num = size + 2 * padding - kernel
    if ceil_mode:
        out = -(-num // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return num // stride + 1


def spatial_after(who: str, input_size, steps) -> tuple[int, int]:
    """Apply ``steps`` (tuples ``(kernel, stride, padding)``) to an input size and check that the
    feature map stays non-empty; returns (h, w)."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    h0, w0 = h, w
    for k, s, p in steps:
        h, w = conv_out(h, k, s, p), conv_out(w, k, s, p)
        if h < 1 or w < 1:
            raise ValueError(f"{who}: 'input_size' {(h0, w0)} is too small: the feature map becomes empty")
    return h, w
