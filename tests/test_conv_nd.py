"""conv1d, conv3d, transposed convolutions and im2col/col2im."""

import numpy as np
import pytest
from conv_refs import conv_ref, conv_transpose_ref, unfold_ref
from helpers import check_grad, random_projection

import oxinet.ops as F

rng = np.random.default_rng(1)


def _grads(fwd, bwd, x, w, b, **kw):
    y = fwd(x, w, b, **kw)
    r = random_projection(y.shape, seed=2)
    dx, dw, db = bwd(r, x, w, **kw)

    def loss():
        return np.sum(r * fwd(x, w, b, **kw))

    check_grad(loss, x, dx)
    check_grad(loss, w, dw)
    check_grad(loss, b, db)


CASES_1D = [
    ((2, 3, 11), (4, 3, 3), 1, 1, 1, 1),
    ((1, 1, 9), (2, 1, 4), 1, "same", 1, 1),
    ((2, 4, 13), (6, 2, 3), 2, 2, 2, 2),
    ((2, 3, 10), (3, 1, 5), 1, "same", 1, 3),
    ((3, 5, 7), (2, 5, 1), 1, 0, 1, 1),
]


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CASES_1D)
def test_conv1d(xs, ws, stride, padding, dilation, groups):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(F.conv1d(x, w, b, **kw), conv_ref(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    _grads(F.conv1d, F.conv1d_backward, x, w, b, **kw)


CASES_3D = [
    ((2, 2, 4, 5, 4), (3, 2, 2, 3, 2), 1, 1, 1, 1),
    ((1, 2, 5, 5, 5), (2, 2, 3, 3, 3), (2, 1, 2), (1, 0, 1), (1, 2, 1), 1),
    ((1, 4, 4, 4, 4), (4, 2, 2, 2, 2), 1, "same", 1, 2),
    ((2, 3, 3, 3, 3), (2, 3, 1, 1, 1), 1, 0, 1, 1),
]


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CASES_3D)
def test_conv3d(xs, ws, stride, padding, dilation, groups):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(F.conv3d(x, w, b, **kw), conv_ref(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    _grads(F.conv3d, F.conv3d_backward, x, w, b, **kw)


def test_conv3d_course_volume_example():
    # a 14x14x14 volume with 16 filters of 5x5x5 -> 16 channels of 10x10x10
    y = F.conv3d(np.zeros((1, 1, 14, 14, 14), np.float32), np.zeros((16, 1, 5, 5, 5), np.float32))
    assert y.shape == (1, 16, 10, 10, 10)


# x shape, w shape (C_in, C_out/groups, k...), stride, padding, output_padding, groups, dilation
CASES_T = [
    ((2, 3, 4, 5), (3, 2, 3, 3), 1, 0, 0, 1, 1),
    ((1, 2, 3, 3), (2, 3, 3, 3), 2, 1, 1, 1, 1),
    ((2, 4, 3, 4), (4, 1, 2, 3), (2, 3), (0, 1), (1, 2), 2, 1),
    ((1, 2, 4, 3), (2, 2, 3, 2), 1, 1, (1, 0), 1, (2, 1)),  # output_padding < dilation
    ((2, 3, 3, 3), (3, 2, 1, 1), 2, 0, 1, 1, 1),
]


@pytest.mark.parametrize("xs,ws,stride,padding,output_padding,groups,dilation", CASES_T)
def test_conv_transpose2d(xs, ws, stride, padding, output_padding, groups, dilation):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[1] * groups)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    y = F.conv_transpose2d(x, w, b, **kw)
    np.testing.assert_allclose(y, conv_transpose_ref(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    _grads(F.conv_transpose2d, F.conv_transpose2d_backward, x, w, b, **kw)


def test_conv_transpose_is_the_input_gradient_of_conv():
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    dx = F.conv2d_backward(dy, x, w, stride=2, padding=1, needs=("input",))[0]
    # (4 - 1) * 2 - 2 + 2 + 1 = 7 columns; the 8 rows need output_padding 1
    np.testing.assert_allclose(F.conv_transpose2d(dy, w, stride=2, padding=1, output_padding=(1, 0)), dx, rtol=1e-5, atol=1e-5)


def test_conv_transpose_course_example():
    # 2x2 input, 3x3 filter, p=1, s=2: the notes' 4x4 needs output_padding=1 (INVENTORY F35/E49)
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = np.arange(9.0).reshape(1, 1, 3, 3)
    assert F.conv_transpose2d(x, w, stride=2, padding=1).shape == (1, 1, 3, 3)
    y = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    assert y.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(y, conv_transpose_ref(x, w, stride=2, padding=1, output_padding=1))


@pytest.mark.parametrize("nd", [1, 3])
def test_conv_transpose_1d_3d(nd):
    xs = (2, 2) + (3,) * nd
    ws = (2, 3) + (2,) * nd
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(3)
    fwd = F.conv_transpose1d if nd == 1 else F.conv_transpose3d
    bwd = F.conv_transpose1d_backward if nd == 1 else F.conv_transpose3d_backward
    kw = dict(stride=2, padding=1, output_padding=1)
    np.testing.assert_allclose(fwd(x, w, b, **kw), conv_transpose_ref(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    _grads(fwd, bwd, x, w, b, **kw)


def test_conv_transpose_bad_input():
    x = np.zeros((1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"'weight' has shape \(4, 2, 3, 3\) but input has 3 channels"):
        F.conv_transpose2d(x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="'output_padding'"):
        F.conv_transpose2d(x, np.zeros((3, 2, 3, 3)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="'padding'"):
        F.conv_transpose2d(x, np.zeros((3, 2, 3, 3)), padding="same")
    with pytest.raises(ValueError, match="'padding'"):
        F.conv_transpose2d(np.zeros((1, 3, 1, 1)), np.zeros((3, 2, 1, 1)), padding=1)
    with pytest.raises(ValueError, match="'groups'=2"):
        F.conv_transpose2d(x, np.zeros((3, 2, 3, 3)), groups=2)


# --------------------------------------------------------------------------- im2col / col2im


@pytest.mark.parametrize(
    "xs,k,d,p,s",
    [((2, 3, 6, 5), 3, 1, 0, 1), ((1, 2, 7, 8), (2, 3), (2, 1), (1, 2), (2, 1)), ((2, 1, 4, 4), 1, 1, 1, 3)],
)
def test_im2col_matches_unfold_and_col2im_is_its_adjoint(xs, k, d, p, s):
    x = rng.standard_normal(xs)
    cols = F.im2col(x, k, dilation=d, padding=p, stride=s)
    np.testing.assert_array_equal(cols, unfold_ref(x, k, d, p, s))
    c = rng.standard_normal(cols.shape)
    back = F.col2im(c, xs[2:], k, dilation=d, padding=p, stride=s)
    assert back.shape == xs
    np.testing.assert_allclose(np.sum(c * cols), np.sum(back * x), rtol=1e-12)
    # unbatched forms
    np.testing.assert_array_equal(F.im2col(x[0], k, dilation=d, padding=p, stride=s), cols[0])
    np.testing.assert_array_equal(F.col2im(c[0], xs[2:], k, dilation=d, padding=p, stride=s), back[0])


def test_conv_is_weight_times_im2col():
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    cols = F.im2col(x, 3, padding=1, stride=2)
    y = (w.reshape(5, -1) @ cols).reshape(2, 5, 4, 4)
    np.testing.assert_allclose(y, F.conv2d(x, w, padding=1, stride=2), rtol=1e-5, atol=1e-5)


def test_fold_of_ones_counts_overlaps():
    cols = np.ones((1, 4, 9))
    counts = F.col2im(cols, (4, 4), 2)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_im2col_col2im_bad_input():
    with pytest.raises(ValueError, match="'input' must be 4-D"):
        F.im2col(np.zeros((3, 3)), 2)
    with pytest.raises(ValueError, match="'kernel_size'"):
        F.im2col(np.zeros((1, 1, 3, 3)), 4)
    with pytest.raises(ValueError, match="divisible by kh\\*kw = 4"):
        F.col2im(np.zeros((1, 5, 9)), (4, 4), 2)
    with pytest.raises(ValueError, match="L = 8 blocks"):
        F.col2im(np.zeros((1, 4, 8)), (4, 4), 2)
    with pytest.raises(TypeError, match="'input'"):
        F.im2col(np.zeros((1, 1, 3, 3), np.int32), 2)
