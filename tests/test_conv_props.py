"""Property tests: random conv2d geometries against the naive reference, and the
adjoint identities that tie forward, backward and transposed convolutions together."""

import numpy as np
from conv_refs import conv_ref
from hypothesis import given, settings
from hypothesis import strategies as st

import oxinet.ops as F


@st.composite
def geometries(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    same = draw(st.booleans())
    if same:
        stride, padding = (1, 1), "same"
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    pads = (0, 0) if same else padding
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * pads[0]), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pads[1]), 9))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    return dict(n=n, c=cg * groups, o=og * groups, groups=groups, k=(kh, kw), h=h, w=w,
                stride=stride, padding=padding, dilation=(dh, dw), seed=seed)


@settings(max_examples=60, deadline=None)
@given(geometries())
def test_random_geometries_match_reference_and_adjoints(gm):
    rng = np.random.default_rng(gm["seed"])
    x = rng.standard_normal((gm["n"], gm["c"], gm["h"], gm["w"]))
    wt = rng.standard_normal((gm["o"], gm["c"] // gm["groups"]) + gm["k"])
    kw = dict(stride=gm["stride"], padding=gm["padding"], dilation=gm["dilation"], groups=gm["groups"])
    y = F.conv2d(x, wt, **kw)
    np.testing.assert_allclose(y, conv_ref(x, wt, None, **kw), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = F.conv2d_backward(dy, x, wt, **kw)
    lhs = np.sum(dy * y)
    np.testing.assert_allclose(np.sum(dx * x), lhs, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.sum(dw * wt), lhs, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-10, atol=1e-10)
    # float32 agrees with float64
    y32 = F.conv2d(x.astype(np.float32), wt.astype(np.float32), **kw)
    np.testing.assert_allclose(y32, y, rtol=1e-4, atol=1e-4)
