"""Bad input to the pooling / unpooling / interpolation ops: the right exception naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

import oxinet.ops as F

X = np.zeros((2, 3, 8, 8), np.float32)


@pytest.mark.parametrize("call,exc,name", [
    (lambda: F.max_pool2d(X, 3, padding=2), ValueError, "'padding'"),       # pad > k/2 (PyTorch refuses)
    (lambda: F.avg_pool2d(X, 2, padding=2), ValueError, "'padding'"),
    (lambda: F.max_pool2d(X, 2, stride=0), ValueError, "'stride'"),
    (lambda: F.avg_pool2d(X, 2, stride=(1, 0)), ValueError, "'stride'"),
    (lambda: F.max_pool2d(X, 0), ValueError, "'kernel_size'"),
    (lambda: F.max_pool2d(X, 2, dilation=0), ValueError, "'dilation'"),
    (lambda: F.max_pool2d(X, 2, padding=-1), ValueError, "'padding'"),
    (lambda: F.max_pool2d(X, 9), ValueError, "'kernel_size'"),               # larger than input
    (lambda: F.max_pool2d(X, 5, dilation=3), ValueError, "'kernel_size'"),   # dilated window too large
    (lambda: F.avg_pool2d(X, (11, 2), padding=(1, 0)), ValueError, "'kernel_size'"),
    (lambda: F.max_pool2d(X, (2, 2, 2)), ValueError, "'kernel_size'"),
    (lambda: F.max_pool2d(X, 2.0), TypeError, "'kernel_size'"),
    (lambda: F.max_pool2d(X[0, 0], 2), ValueError, "'x'"),                   # rank 2
    (lambda: F.max_pool2d(X[None], 2), ValueError, "'x'"),                   # rank 5
    (lambda: F.max_pool1d(X, 2), ValueError, "'x'"),
    (lambda: F.max_pool2d(np.zeros((1, 0, 4, 4)), 2), ValueError, "'x'"),
    (lambda: F.max_pool2d(X.astype(np.int32), 2), TypeError, "'x'"),
    (lambda: F.avg_pool2d(X.astype(np.float16), 2), TypeError, "'x'"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError, "'divisor_override'"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=1.5), TypeError, "'divisor_override'"),
    (lambda: F.adaptive_avg_pool2d(X, (2, 2, 2)), ValueError, "'output_size'"),
    (lambda: F.adaptive_max_pool2d(X, -1), ValueError, "'output_size'"),
    (lambda: F.adaptive_avg_pool2d(X.astype(np.int64), 2), TypeError, "'x'"),
])
def test_forward_errors(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


def test_backward_errors():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    y, ix = F.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(TypeError, match="'indices'"):
        F.max_pool2d_backward(y, ix.astype(np.float64), x.shape)
    with pytest.raises(ValueError, match="'indices'"):
        F.max_pool2d_backward(y, ix[:, :, :2], x.shape)
    with pytest.raises(ValueError, match="'indices'"):
        bad = ix.copy()
        bad[0, 0, 0, 0] = 64
        F.max_pool2d_backward(y, bad, x.shape)
    with pytest.raises(ValueError, match="'indices'"):
        bad = ix.copy()
        bad[1, 2, 3, 3] = -1
        F.max_pool2d_backward(y, bad, x.shape)
    with pytest.raises(ValueError, match="'dy'"):
        F.max_pool2d_backward(y, ix, (2, 4, 8, 8))
    with pytest.raises(TypeError, match="'dy'"):
        F.max_pool2d_backward(y.astype(np.int32), ix, x.shape)
    with pytest.raises(ValueError, match="'input_shape'"):
        F.max_pool2d_backward(y, ix, (8, 8))
    with pytest.raises(ValueError, match="'dy'"):
        F.avg_pool2d_backward(y, x.shape, 3)
    with pytest.raises(ValueError, match="'padding'"):
        F.avg_pool2d_backward(y, x.shape, 2, padding=2)
    with pytest.raises(ValueError, match="'dy'"):
        F.adaptive_avg_pool2d_backward(y, (2, 4, 8, 8))


def test_unpool_errors():
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    y, ix = F.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="'indices'"):
        F.max_unpool2d(y, ix[:, :1], 2)
    with pytest.raises(TypeError, match="'indices'"):
        F.max_unpool2d(y, ix.astype(np.float32), 2)
    with pytest.raises(ValueError, match="'indices'"):
        F.max_unpool2d(y, ix + 100, 2)
    with pytest.raises(ValueError, match="'output_size'"):
        F.max_unpool2d(y, ix, 2, output_size=(9, 6))
    with pytest.raises(ValueError, match="'output_size'"):
        F.max_unpool2d(y, ix, 2, output_size=(6, 6, 6))
    with pytest.raises(ValueError, match="'indices'"):
        F.max_unpool2d_backward(np.zeros((1, 2, 2, 2)), ix)


def test_interpolate_errors():
    x = np.zeros((1, 2, 4, 4), np.float32)
    cases = [
        (lambda: F.interpolate(x), ValueError, "'size'"),
        (lambda: F.interpolate(x, size=2, scale_factor=2), ValueError, "'scale_factor'"),
        (lambda: F.interpolate(x, size=2, mode="bicubic"), ValueError, "'mode'"),
        (lambda: F.interpolate(x, size=2, mode="linear"), ValueError, "'x'"),
        (lambda: F.interpolate(x[0], size=2, mode="bilinear"), ValueError, "'x'"),
        (lambda: F.interpolate(x, size=2, align_corners=True), ValueError, "'align_corners'"),
        (lambda: F.interpolate(x, size=(2, 2, 2)), ValueError, "'size'"),
        (lambda: F.interpolate(x, size=0), ValueError, "'size'"),
        (lambda: F.interpolate(x, scale_factor=0.1), ValueError, "'scale_factor'"),
        (lambda: F.interpolate(x, scale_factor=-2), ValueError, "'scale_factor'"),
        (lambda: F.interpolate(x.astype(np.uint8), size=2), TypeError, "'x'"),
        (lambda: F.interpolate(x[0, 0], size=2), ValueError, "'x'"),
        (lambda: F.interpolate_backward(np.zeros((1, 2, 3, 3)), x.shape, size=2), ValueError, "'dy'"),
        (lambda: F.interpolate_backward(np.zeros((1, 2, 8, 8)), x.shape, scale_factor=3), ValueError, "'dy'"),
    ]
    for call, exc, name in cases:
        with pytest.raises(exc, match=name):
            call()
