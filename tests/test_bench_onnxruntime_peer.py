"""The ONNX Runtime bench peer computes the same function as the case it is attached to.

Each ONNX model builder of ``oxinet.benchmarks.cases_onnxruntime`` is run on small
shapes with the case's parameters (stride, padding, groups, gate layout, ...) and
compared with oxinet's op and the case module's NumPy peer. Skipped when onnxruntime
or onnx is not installed (they are optional bench peers, not dependencies).
"""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import oxinet.ops as F  # noqa: E402
from oxinet.benchmarks import cases_attention, cases_conv, cases_detection, cases_rnn  # noqa: E402
from oxinet.benchmarks import cases_onnxruntime as ortp  # noqa: E402
from oxinet.benchmarks.harness import load_cases  # noqa: E402

TOL = dict(rtol=1e-4, atol=1e-4)


def _run(built):
    sess, feeds = built
    return sess.run(None, feeds)


@pytest.mark.parametrize("shape", cases_conv.SHAPES, ids=[s[0] for s in cases_conv.SHAPES])
def test_conv2d_matches(shape):
    _, n, c, h, k, s, p, o, g = shape
    # the case's kernel, stride, padding and grouping on a small input
    n, h = 2, 9 + k
    if g > 1:  # depthwise
        c = o = g = 5
    else:
        c, o = min(c, 5), 4
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = rng.standard_normal((o, c // g, k, k), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    (y,) = _run(ortp.conv2d_model(x, w, b, s, p, g))
    ref = F.conv2d(x, w, b, stride=s, padding=p, groups=g)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **TOL)
    np.testing.assert_allclose(y, cases_conv.np_conv2d(x, w, b, s, p, g), **TOL)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1)])
@pytest.mark.parametrize("hw", [8, 7])
def test_pool2d_matches(kind, k, s, p, hw):
    # negative inputs at the border show whether padding enters the max / the mean
    x = np.random.default_rng(2).standard_normal((2, 3, hw, hw), dtype=np.float32) - 2
    (y,) = _run(ortp.pool2d_model(x, kind, k, s, p))
    ref = F.max_pool2d(x, k, s, p) if kind == "max" else F.avg_pool2d(x, k, s, p)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_rnn_matches(kind):
    x, w_ih, w_hh, b_ih, b_hh = ortp.rnn_inputs(kind, 7, 3, 5, 4)
    outs = _run(ortp.rnn_model(kind, x, w_ih, w_hh, b_ih, b_hh))
    y = outs[0][:, 0]
    ref_np, _ = cases_rnn.numpy_forward(kind, x, w_ih, w_hh, b_ih, b_hh)
    np.testing.assert_allclose(y, ref_np, rtol=1e-5, atol=1e-5)
    if kind == "lstm":
        ry, rh, rc = F.lstm(x, None, None, w_ih, w_hh, b_ih, b_hh)
        np.testing.assert_allclose(outs[2][0], rc, rtol=1e-5, atol=1e-5)
    else:
        ry, rh = F.gru(x, None, w_ih, w_hh, b_ih, b_hh)
    np.testing.assert_allclose(y, ry, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[1][0], np.asarray(rh).reshape(outs[1][0].shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_sdpa_matches(fused):
    q, k, v, _ = cases_attention._inputs(2, 3, 16, 8)
    (y,) = _run(ortp.sdpa_model(q, k, v, fused))
    np.testing.assert_allclose(y, F.scaled_dot_product_attention(q, k, v), **TOL)
    np.testing.assert_allclose(y, cases_attention.numpy_forward(q, k, v)[0], **TOL)


@pytest.mark.parametrize("sa,sb", [((5, 7), (7, 3)), ((4, 5, 6), (4, 6, 2))])
def test_matmul_matches(sa, sb):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(sa, dtype=np.float32), rng.standard_normal(sb, dtype=np.float32)
    (y,) = _run(ortp.matmul_model(a, b))
    np.testing.assert_allclose(y, F.matmul(a, b), **TOL)


def test_softmax_and_cross_entropy_match():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 11), dtype=np.float32) * 3
    t = rng.integers(0, 11, 6)
    (y,) = _run(ortp.softmax_model(x))
    np.testing.assert_allclose(y, F.softmax(x), rtol=1e-5, atol=1e-6)
    (loss,) = _run(ortp.cross_entropy_model(x, t))
    np.testing.assert_allclose(loss, F.cross_entropy(x, t), rtol=1e-5)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "silu", "gelu_tanh", "elu", "softplus",
                                  "gelu_exact"])
def test_activation_matches(name):
    x = np.linspace(-6, 6, 101, dtype=np.float32)
    (y,) = _run(ortp.activation_model(name, x))
    if name == "gelu_exact":
        ref = F.gelu(x)
    elif name == "gelu_tanh":
        ref = F.gelu(x, approximate="tanh")
    else:
        ref = getattr(F, name)(x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [50, 400])
def test_nms_matches(n):
    boxes, scores = cases_detection.random_boxes(n, extent=200.0)
    (sel,) = _run(ortp.nms_model(boxes, scores, 0.5))
    keep = F.nms(boxes, scores, 0.5)
    assert len(keep) < n  # some boxes were suppressed
    np.testing.assert_array_equal(sel[:, 2], keep)  # same boxes, same (score) order
    np.testing.assert_array_equal(sel[:, 2], cases_detection.numpy_nms(boxes, scores, 0.5))


def test_batched_nms_matches():
    boxes, scores = cases_detection.random_boxes(600, extent=200.0)
    idxs = np.random.default_rng(1).integers(0, 5, 600)
    (sel,) = _run(ortp.nms_model(boxes, scores, 0.5, idxs, 5))
    keep = F.batched_nms(boxes, scores, idxs, 0.5)
    assert len(keep) < 600
    np.testing.assert_array_equal(idxs[sel[:, 2]], sel[:, 1])
    np.testing.assert_array_equal(np.sort(sel[:, 2]), np.sort(keep))


def _closure(fn):
    return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))


def test_peer_inputs_are_the_cases_inputs():
    """The duplicated input builders draw the same arrays as the cases' own factories."""
    cases = load_cases()
    c = cases["conv2d fwd N64 C3 64x64 k4 same O8"]
    mine = _closure(c.factory("onnxruntime"))["feeds"]["x"]
    theirs = _closure(c.factory("numpy"))
    np.testing.assert_array_equal(mine, theirs["x"])
    c = cases["LSTM T100 B64 D128 H128 fwd"]
    theirs = _closure(c.factory("numpy"))
    x, w_ih, w_hh, b_ih, b_hh = ortp.rnn_inputs("lstm", 100, 64, 128, 128)
    for a, name in ((x, "x"), (w_ih, "w_ih"), (w_hh, "w_hh"), (b_ih, "b_ih"), (b_hh, "b_hh")):
        np.testing.assert_array_equal(a, theirs[name])
    c = cases["roi_align N2 C256 50x68 K512 7x7 sr2"]
    mine = _closure(c.factory("onnxruntime"))["feeds"]
    theirs = _closure(c.factory("oxinet"))
    np.testing.assert_array_equal(mine["x"], theirs["x"])
    np.testing.assert_array_equal(mine["rois"], theirs["rois"][:, 1:])
    np.testing.assert_array_equal(mine["bi"], theirs["rois"][:, 0])


def test_peer_attached_to_forward_cases_only():
    cases = load_cases()
    with_ort = [n for n, c in cases.items() if "onnxruntime" in c.peers]
    assert "conv2d fwd N32 C64 56x56 k3 p1 O64" in with_ort
    assert "GRU T100 B32 D128 H256 fwd" in with_ort
    assert len(with_ort) >= 30
    assert not [n for n in with_ort if "bwd" in n]


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_roi_align_matches(aligned, sampling_ratio):
    # boxes partly outside the feature map (as in the case) and smaller than a cell
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 10, 13), dtype=np.float32)
    boxes, _ = cases_detection.random_boxes(40, extent=150, size=(2, 60))
    rois = np.concatenate([rng.integers(0, 2, (40, 1)).astype(np.float32), boxes], axis=1)
    (y,) = _run(ortp.roi_align_model(x, rois, 7, 1 / 16, sampling_ratio, aligned))
    ref = F.roi_align(x, rois, 7, spatial_scale=1 / 16, sampling_ratio=sampling_ratio, aligned=aligned)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
