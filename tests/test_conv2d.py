"""conv2d forward and backward: naive references, finite differences, the course's
worked numbers, and bad input."""

import numpy as np
import pytest
from conv_refs import conv_ref
from helpers import check_grad, random_projection

import oxinet
import oxinet.ops as F

rng = np.random.default_rng(0)

# (x shape, w shape, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 3, 8, 8), (5, 3, 3, 3), 2, 0, 1, 1),  # batch 1, stride 2
    ((2, 1, 6, 7), (2, 1, 2, 2), 1, "same", 1, 1),  # even kernel, asymmetric 'same', 1 channel
    ((2, 2, 7, 7), (3, 2, 4, 3), 1, "same", (2, 1), 1),  # 'same' with dilation, even/odd
    ((1, 3, 9, 8), (2, 3, 3, 2), (2, 3), (1, 2), (2, 1), 1),  # pairs everywhere
    ((2, 4, 6, 6), (6, 2, 3, 3), 1, 1, 1, 2),  # groups
    ((2, 4, 7, 7), (4, 1, 3, 3), 1, 1, 1, 4),  # depthwise
    ((2, 3, 8, 7), (6, 1, 3, 3), 2, 1, 1, 3),  # depthwise, multiplier 2, stride 2
    ((1, 2, 9, 9), (2, 1, 3, 3), 1, 2, 2, 2),  # depthwise dilated
    ((2, 2, 6, 7), (4, 1, 2, 2), 1, "same", 1, 2),  # depthwise x2, even kernel 'same'
    ((1, 2, 5, 4), (2, 1, 2, 3), 1, 3, (2, 1), 2),  # depthwise, padding wider than the kernel
    ((1, 3, 20, 37), (3, 1, 5, 5), 1, (2, 1), 1, 3),  # depthwise, several 16-wide blocks
    ((3, 5, 4, 5), (4, 5, 1, 1), 1, 0, 1, 1),  # pointwise
    ((2, 4, 5, 5), (6, 2, 1, 1), 1, 0, 1, 2),  # grouped pointwise
    ((2, 3, 5, 5), (2, 3, 1, 1), 2, 1, 1, 1),  # strided, padded 1x1 (general path)
    ((2, 3, 1, 1), (4, 3, 1, 1), 1, 0, 1, 1),  # 1x1 image
    ((1, 2, 1, 1), (3, 2, 3, 3), 1, 1, 1, 1),  # 1x1 image, 3x3 kernel, padding 1
    ((2, 2, 1, 1), (3, 2, 3, 3), 1, 2, 2, 1),  # 1x1 image, dilated taps far outside it
    ((1, 2, 2, 3), (2, 1, 3, 3), 1, 4, 3, 2),  # padding and dilation larger than the image
    ((2, 3, 5, 4), (2, 3, 5, 4), 1, "valid", 1, 1),  # kernel as large as the image
]


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_naive_loops(xs, ws, stride, padding, dilation, groups, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ref = conv_ref(x, w, b, stride, padding, dilation, groups)
    assert y.dtype == dtype and y.shape == ref.shape
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CASES)
def test_gradients_match_finite_differences(xs, ws, stride, padding, dilation, groups):
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0])
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = F.conv2d(x, w, b, **kw)
    r = random_projection(y.shape, seed=1)
    dx, dw, db = F.conv2d_backward(r, x, w, **kw)

    def loss():
        return np.sum(r * F.conv2d(x, w, b, **kw))

    check_grad(loss, x, dx)
    check_grad(loss, w, dw)
    check_grad(loss, b, db)


def test_needs_computes_only_what_is_asked():
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 4, 4))
    full = F.conv2d_backward(dy, x, w)
    dx, dw, db = F.conv2d_backward(dy, x, w, needs=("weight",))
    assert dx is None and db is None
    np.testing.assert_array_equal(dw, full[1])
    dx, dw, db = F.conv2d_backward(dy, x, w, needs=("input", "bias"))
    assert dw is None
    np.testing.assert_array_equal(dx, full[0])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_non_contiguous_inputs_and_mixed_dtypes():
    xb = rng.standard_normal((2, 6, 9, 10))
    x = xb[:, ::2, :, ::-1]  # strided and reversed
    w = rng.standard_normal((3, 3, 3, 3)).transpose(0, 1, 3, 2)  # transposed view
    y = F.conv2d(x, w, padding=1)
    np.testing.assert_allclose(y, conv_ref(x, w, padding=1), rtol=1e-12, atol=1e-12)
    y32 = F.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1)
    assert y32.dtype == np.float32
    ymix = F.conv2d(x.astype(np.float32), w, padding=1)
    assert ymix.dtype == np.float64
    dy = rng.standard_normal(y.shape[:2] + (y.shape[3], y.shape[2])).transpose(0, 1, 3, 2)
    assert not dy.flags.c_contiguous
    dx, dw, db = F.conv2d_backward(dy, x, w, padding=1)
    dx2, dw2, _ = F.conv2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(x), np.ascontiguousarray(w), padding=1)
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_array_equal(dw, dw2)


def test_unbatched_input_and_empty_batch():
    x = rng.standard_normal((3, 6, 6))
    w = rng.standard_normal((2, 3, 3, 3))
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (2, 6, 6)
    np.testing.assert_allclose(y, conv_ref(x[None], w, padding=1)[0], rtol=1e-12)
    dx, dw, _ = F.conv2d_backward(np.ones((2, 6, 6)), x, w, padding=1)
    assert dx.shape == x.shape and dw.shape == w.shape
    e = F.conv2d(np.zeros((0, 3, 6, 6), np.float32), w.astype(np.float32))
    assert e.shape == (0, 2, 4, 4) and e.dtype == np.float32
    dx, dw, db = F.conv2d_backward(np.zeros((0, 2, 4, 4)), np.zeros((0, 3, 6, 6)), w)
    assert dx.shape == (0, 3, 6, 6) and np.all(dw == 0) and np.all(db == 0)


def test_nan_propagates():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = np.nan
    y = F.conv2d(x, np.ones((1, 1, 3, 3)))
    assert np.isnan(y).sum() == 9


def test_larger_shapes_match_reference_and_thread_count():
    # several im2col tiles, the parallel paths and the depthwise kernel on real sizes
    x = rng.standard_normal((3, 40, 33, 31)).astype(np.float32)
    w = rng.standard_normal((48, 20, 3, 3)).astype(np.float32)
    wd = rng.standard_normal((40, 1, 3, 3)).astype(np.float32)
    results = []
    old = oxinet.get_num_threads()
    try:
        for t in (1, 2):
            oxinet.set_num_threads(t)
            y = F.conv2d(x, w, padding=1, groups=2)
            g = F.conv2d_backward(y, x, w, padding=1, groups=2)
            yd = F.conv2d(x, wd, padding=1, groups=40)
            gd = F.conv2d_backward(yd, x, wd, padding=1, groups=40)
            results.append((y, *g, yd, *gd))
    finally:
        oxinet.set_num_threads(old)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    y = results[0][0]
    np.testing.assert_allclose(y[:, :, ::4, ::4], conv_ref(x, w, None, 1, 1, 1, 2)[:, :, ::4, ::4], rtol=2e-4, atol=2e-4)


# --------------------------------------------------------------------------- course numbers

EDGE_IMG = np.array(
    [[3, 0, 1, 2, 7, 4], [1, 5, 8, 9, 3, 1], [2, 7, 2, 5, 1, 3], [0, 1, 3, 1, 7, 8], [4, 2, 1, 6, 2, 8], [2, 4, 5, 2, 3, 9]],
    np.float32,
)
VERTICAL = np.array([[1, 0, -1]] * 3, np.float32)


def _c2(img, k, **kw):
    return F.conv2d(np.asarray(img, np.float32)[None, None], np.asarray(k, np.float32)[None, None], **kw)[0, 0]


def test_course_vertical_edge_example():
    expect = [[-5, -4, 0, 8], [-10, -2, 2, 3], [0, -2, -4, -7], [-3, -2, -3, -16]]
    np.testing.assert_array_equal(_c2(EDGE_IMG, VERTICAL), expect)


def test_course_step_edges():
    step = np.array([[10, 10, 10, 0, 0, 0]] * 6)
    np.testing.assert_array_equal(_c2(step, VERTICAL), [[0, 30, 30, 0]] * 4)
    np.testing.assert_array_equal(_c2(step[:, ::-1], VERTICAL), [[0, -30, -30, 0]] * 4)
    quad = np.array([[10, 10, 10, 0, 0, 0]] * 3 + [[0, 0, 0, 10, 10, 10]] * 3)
    np.testing.assert_array_equal(
        _c2(quad, VERTICAL.T), [[0, 0, 0, 0], [30, 10, -10, -30], [30, 10, -10, -30], [0, 0, 0, 0]]
    )


def test_course_stride_two_example_with_erratum():
    img = [[2, 3, 7, 4, 6, 2, 9], [6, 6, 9, 8, 7, 4, 3], [3, 4, 8, 3, 8, 9, 7], [7, 8, 3, 6, 6, 3, 4],
           [4, 2, 1, 8, 3, 4, 6], [3, 2, 4, 1, 9, 8, 3], [0, 1, 3, 9, 2, 1, 4]]
    k = [[3, 4, 4], [1, 0, 2], [-1, 0, 3]]
    # the notes print 83 and 127; 88 and 117 are right (INVENTORY E10)
    np.testing.assert_array_equal(_c2(img, k, stride=2), [[91, 100, 88], [69, 91, 117], [44, 72, 74]])


@pytest.mark.parametrize(
    "n,f,s,p,expect",
    [(6, 3, 1, 0, 4), (6, 3, 1, 1, 6), (7, 3, 2, 0, 3), (39, 3, 1, 0, 37), (37, 5, 2, 0, 17), (17, 5, 2, 0, 7),
     (5, 5, 1, 2, 5), (7, 7, 1, 3, 7), (8, 3, 2, 1, 4)],
)
def test_course_output_size_formula(n, f, s, p, expect):
    # floor((n + 2p - f) / s) + 1; the erratum E20's floor((n + 2p - f + 1) / s) gives 2 for (7, 3, 2, 0)
    y = F.conv2d(np.zeros((1, 1, n, n), np.float32), np.zeros((1, 1, f, f), np.float32), stride=s, padding=p)
    assert y.shape == (1, 1, expect, expect)


def test_course_simple_convnet_chain():
    x = np.zeros((1, 3, 39, 39), np.float32)
    a = F.conv2d(x, np.zeros((10, 3, 3, 3), np.float32))
    a = F.conv2d(a, np.zeros((20, 10, 5, 5), np.float32), stride=2)
    a = F.conv2d(a, np.zeros((40, 20, 5, 5), np.float32), stride=2)
    assert a.shape == (1, 40, 7, 7) and a.size == 1960


def test_course_same_padding_sizes():
    for f in (1, 3, 5, 7):
        y = F.conv2d(np.zeros((1, 1, 9, 9)), np.zeros((1, 1, f, f)), padding="same")
        assert y.shape == (1, 1, 9, 9)


# --------------------------------------------------------------------------- bad input

X = np.zeros((2, 4, 8, 8), np.float32)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(w=np.zeros((8, 3, 3, 3), np.float32)), ValueError, r"'weight' has shape \(8, 3, 3, 3\) but input has 4 channels \(shape \(2, 4, 8, 8\)\)"),
        (dict(w=np.zeros((6, 2, 3, 3), np.float32), groups=3), ValueError, r"'groups'=3 does not divide the input channels 4"),
        (dict(w=np.zeros((8, 2, 3, 3), np.float32), groups=4), ValueError, r"'weight' has shape \(8, 2, 3, 3\), expected 1 input channels per group"),
        (dict(w=np.zeros((6, 1, 3, 3), np.float32), groups=4), ValueError, r"'groups'=4 does not divide the output channels 6"),
        (dict(w=np.zeros((2, 4, 9, 3), np.float32)), ValueError, r"larger than the padded input.*\(2, 4, 8, 8\)"),
        (dict(w=np.zeros((2, 4, 3, 3), np.float32), dilation=4), ValueError, r"larger than the padded input"),
        (dict(stride=0), ValueError, r"'stride' must be >= 1"),
        (dict(stride=(1, 0)), ValueError, r"'stride'"),
        (dict(dilation=0), ValueError, r"'dilation' must be >= 1"),
        (dict(padding=-1), ValueError, r"'padding' must be non-negative"),
        (dict(padding="full"), ValueError, r"'padding'"),
        (dict(padding="same", stride=2), ValueError, r"padding='same'.*strided"),
        (dict(padding=(1, 1, 1)), ValueError, r"'padding' must have 2 values"),
        (dict(stride=1.5), TypeError, r"'stride'"),
        (dict(groups=0), ValueError, r"'groups' must be >= 1"),
        (dict(b=np.zeros(3, np.float32)), ValueError, r"'bias' has shape \(3,\), expected \(2,\)"),
        (dict(w=np.zeros((2, 4, 3), np.float32)), ValueError, r"'weight' must be 4-D"),
        (dict(x=np.zeros((8, 8), np.float32)), ValueError, r"'input' must be 4-D .*got shape \(8, 8\)"),
        (dict(x=np.zeros((2, 4, 8, 8), np.int64)), TypeError, r"'input' must be a float32 or float64 array, got dtype int64"),
        (dict(w=np.zeros((2, 4, 3, 3), np.int32)), TypeError, r"'weight'.*int32"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, match):
    args = dict(x=X, w=np.zeros((2, 4, 3, 3), np.float32), b=None)
    args.update(kwargs)
    x, w, b = args.pop("x"), args.pop("w"), args.pop("b")
    with pytest.raises(exc, match=match):
        F.conv2d(x, w, b, **args)


def test_backward_bad_input():
    x = np.zeros((2, 4, 8, 8))
    w = np.zeros((2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"'dy' has shape \(2, 2, 5, 5\), expected the output shape \(2, 2, 6, 6\)"):
        F.conv2d_backward(np.zeros((2, 2, 5, 5)), x, w)
    with pytest.raises(ValueError, match="'needs'"):
        F.conv2d_backward(np.zeros((2, 2, 6, 6)), x, w, needs=("inputs",))
    with pytest.raises(TypeError, match="'dy'"):
        F.conv2d_backward(np.zeros((2, 2, 6, 6), np.int8), x, w)
