"""ONNX Runtime as an optional peer ("onnxruntime") of existing forward cases.

PyTorch cannot be installed on this machine, so ONNX Runtime's CPU build (hand-tuned
MLAS kernels for convolution, pooling, GEMM, LSTM/GRU, softmax) stands in as an
optimised peer timed in the same run. It is never a dependency of oxinet: when
``onnxruntime``/``onnx`` are missing the factories raise ImportError and the harness
shows "n/a".

Each peer builds a one-op (or few-op) ONNX model in memory with ``onnx.helper``:
weights are initializers, the per-call inputs are fed on every ``sess.run``. Inputs
are built exactly as in the case's own factory (same shapes, float32, same seed and
draw order; the module-level helpers of the case modules are reused where they exist).
Sessions run sequentially with ``OXINET_NUM_THREADS`` intra-op threads (the harness sets
it), one inter-op thread, all graph optimisations on.

How each op is made to compute PyTorch's function:

* conv2d: ``Conv`` with explicit pads (PyTorch's 'same' for an even kernel pads one
  more at the bottom/right, as the case's ``_pads`` does) and ``group``.
* max/avg pooling: ``MaxPool`` / ``AveragePool`` with ``ceil_mode=0`` and, for the
  average, ``count_include_pad=1`` (PyTorch's defaults). ``max_pool2d fwd+indices`` has
  no peer: ONNX's ``Indices`` are offsets into the whole (N, C, H, W) tensor, not
  per-plane offsets as PyTorch's.
* LSTM/GRU: the ONNX ops with PyTorch's weights permuted to ONNX's gate orders (LSTM
  i,o,f,c from PyTorch's i,f,g,o; GRU z,r,h from r,z,n) and GRU's
  ``linear_before_reset=1`` (PyTorch applies r to ``W_hn h + b_hn``).
* sdpa: opset 23's ``Attention`` op on the (B, H, L, E) arrays (default scale
  1/sqrt(E), no mask), ONNX Runtime's own attention kernel; it was faster here than the
  ``MatMul(q * scale, K^T) -> Softmax -> MatMul`` graph (kept in ``sdpa_model(fused=False)``).
* sgemm: ``MatMul`` (it returns a new output each call, where the case's oxinet and NumPy
  contenders write into a reused ``out=``; ONNX Runtime's arena recycles its buffers). softmax / cross_entropy fwd: ``Softmax`` / ``SoftmaxCrossEntropyLoss``
  (mean reduction). Activations: the ONNX op of each (SiLU as ``x * Sigmoid(x)``,
  GELU through opset 20's ``Gelu``).
* nms: ``NonMaxSuppression`` (corner boxes, IoU > threshold suppresses, as torchvision)
  with ``max_output_boxes_per_class = N``; its output is (class, batch, index) triples.
  batched_nms: one score row per class, boxes not of that class get score -1 and the
  score threshold -0.5 removes them (the usual ONNX way; the kept set equals
  torchvision's, the order is per class instead of by global score).

* roi_align: opset 16's ``RoiAlign`` (avg) with ``half_pixel`` coordinates for
  torchvision's ``aligned=True``; the batch index column becomes its own int64 input.

Not covered: every backward or training case (ONNX Runtime's inference sessions have
no backward), and cases whose op ONNX has not (box_iou, cross-entropy's fused
forward+backward, embedding backward, ...).
"""

from __future__ import annotations

import os

import numpy as np

from oxinet.benchmarks import cases_attention, cases_conv, cases_detection, cases_gemm, cases_loss, cases_pool, cases_rnn
from oxinet.benchmarks.harness import peer

LABEL = "onnxruntime"
OPSET = 17


# ----------------------------------------------------------------------------- sessions

def session(nodes, inputs, outputs, initializers=(), opset: int = OPSET):
    """An ``InferenceSession`` of the graph. ``inputs``/``outputs``: (name, numpy dtype,
    shape or rank) triples; ``initializers``: (name, array) pairs."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    def info(name, dtype, shape):
        shape = [None] * shape if isinstance(shape, int) else shape  # an int: the rank, sizes left open
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)

    graph = helper.make_graph(
        list(nodes), "oxinet_peer", [info(*i) for i in inputs], [info(*o) for o in outputs],
        [numpy_helper.from_array(np.ascontiguousarray(a), name) for name, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 18 else 10  # what this ONNX Runtime reads for the opset
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get("OXINET_NUM_THREADS", "2"))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _runner(sess, feeds):
    return lambda: sess.run(None, feeds)


# ----------------------------------------------------------------------------- builders
# Each returns (session, feeds); the tests call them on small shapes.

def conv2d_model(x, w, b, stride, padding, groups):
    k = w.shape[-1]
    lo, hi = cases_conv._pads(k, padding)
    from onnx import helper

    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
                            pads=[lo, lo, hi, hi], dilations=[1, 1], group=groups)
    sess = session([node], [("x", np.float32, x.shape)], [("y", np.float32, 4)], [("w", w), ("b", b)])
    return sess, {"x": x}


def pool2d_model(x, kind, k, s, p):
    from onnx import helper

    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], ceil_mode=0)
    if kind == "max":
        node = helper.make_node("MaxPool", ["x"], ["y"], dilations=[1, 1], **attrs)
    else:
        node = helper.make_node("AveragePool", ["x"], ["y"], count_include_pad=1, **attrs)
    sess = session([node], [("x", np.float32, x.shape)], [("y", np.float32, 4)])
    return sess, {"x": x}


_LSTM_ORDER = [0, 3, 1, 2]  # PyTorch i,f,g,o -> ONNX i,o,f,c
_GRU_ORDER = [1, 0, 2]  # PyTorch r,z,n -> ONNX z,r,h


def _gates(a, order):
    """Reorder the gate blocks along axis 0 of a (G*H, ...) PyTorch weight or bias."""
    blocks = np.split(a, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def rnn_model(kind, x, w_ih, w_hh, b_ih, b_hh):
    """ONNX LSTM/GRU equal to PyTorch's single-layer unidirectional one (zero h0/c0).
    Outputs: Y (T, 1, B, H), Y_h (1, B, H) [, Y_c (1, B, H)]."""
    from onnx import helper

    H = w_hh.shape[1]
    order = _LSTM_ORDER if kind == "lstm" else _GRU_ORDER
    W = _gates(w_ih, order)[None]
    R = _gates(w_hh, order)[None]
    B = np.concatenate([_gates(b_ih, order), _gates(b_hh, order)])[None]
    outs = ["y", "y_h"] + (["y_c"] if kind == "lstm" else [])
    extra = {} if kind == "lstm" else {"linear_before_reset": 1}
    node = helper.make_node(kind.upper(), ["x", "W", "R", "B"], outs, hidden_size=H, direction="forward", **extra)
    sess = session([node], [("x", np.float32, x.shape)], [(o, np.float32, 4 if o == "y" else 3) for o in outs],
                   [("W", W), ("R", R), ("B", B)])
    return sess, {"x": x}


def sdpa_model(q, k, v, fused: bool = True):
    """softmax(q k^T / sqrt(E)) v on (B, H, L, E) arrays. ``fused``: opset 23's
    ``Attention`` op (ONNX Runtime's own attention kernel, the faster of the two here);
    else the MatMul(q * scale, K^T) -> Softmax -> MatMul graph."""
    from onnx import helper

    ins = [(n, np.float32, a.shape) for n, a in (("q", q), ("k", k), ("v", v))]
    feeds = {"q": q, "k": k, "v": v}
    if fused:
        node = helper.make_node("Attention", ["q", "k", "v"], ["y"])
        return session([node], ins, [("y", np.float32, 4)], opset=23), feeds
    scale = np.array(1.0 / np.sqrt(q.shape[-1]), np.float32)
    nodes = [
        helper.make_node("Mul", ["q", "scale"], ["qs"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["qs", "kt"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    return session(nodes, ins, [("y", np.float32, 4)], [("scale", scale)]), feeds


def matmul_model(a, b):
    from onnx import helper

    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    sess = session([node], [("a", np.float32, a.shape), ("b", np.float32, b.shape)], [("y", np.float32, a.ndim)])
    return sess, {"a": a, "b": b}


def softmax_model(x):
    from onnx import helper

    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    return session([node], [("x", np.float32, x.shape)], [("y", np.float32, x.ndim)]), {"x": x}


def cross_entropy_model(x, t):
    from onnx import helper

    node = helper.make_node("SoftmaxCrossEntropyLoss", ["x", "t"], ["loss"], reduction="mean")
    t = t.astype(np.int64)
    sess = session([node], [("x", np.float32, x.shape), ("t", np.int64, t.shape)], [("loss", np.float32, [])])
    return sess, {"x": x, "t": t}


def activation_model(name, x):
    """The ONNX graph of one activation of cases_loss._NUMPY_ACTS, or None."""
    from onnx import helper

    opset = OPSET
    if name == "silu":
        nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    elif name in ("gelu_tanh", "gelu_exact"):
        nodes = [helper.make_node("Gelu", ["x"], ["y"], approximate="tanh" if name == "gelu_tanh" else "none")]
        opset = 20
    else:
        ops = {"sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "relu": ("Relu", {}),
               "leaky_relu": ("LeakyRelu", {"alpha": 0.01}), "elu": ("Elu", {"alpha": 1.0}),
               "softplus": ("Softplus", {})}
        if name not in ops:
            return None
        op, attrs = ops[name]
        nodes = [helper.make_node(op, ["x"], ["y"], **attrs)]
    sess = session(nodes, [("x", np.float32, x.shape)], [("y", np.float32, x.ndim)], opset=opset)
    return sess, {"x": x}


def nms_model(boxes, scores, iou_threshold, classes=None, num_classes=None):
    """ONNX NonMaxSuppression. Plain: one class. Class-aware (``classes`` given): one
    score row per class, other classes' boxes scored -1 and cut by score threshold -0.5.
    Output: selected (K, 3) int64 triples (batch, class, box index)."""
    from onnx import helper

    n = boxes.shape[0]
    if classes is None:
        sc = scores[None, None, :]
        sthr = -np.inf
    else:
        sc = np.full((1, num_classes, n), -1.0, np.float32)
        sc[0, classes, np.arange(n)] = scores
        sthr = -0.5
    consts = [("max_out", np.array([n], np.int64)), ("iou", np.array([iou_threshold], np.float32)),
              ("sthr", np.array([sthr], np.float32))]
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "sthr"], ["sel"],
                            center_point_box=0)
    b = np.ascontiguousarray(boxes[None], np.float32)
    sc = np.ascontiguousarray(sc, np.float32)
    sess = session([node], [("boxes", np.float32, b.shape), ("scores", np.float32, sc.shape)],
                   [("sel", np.int64, [None, 3])], consts)
    return sess, {"boxes": b, "scores": sc}


def roi_align_model(x, rois, out, spatial_scale, sampling_ratio, aligned):
    """ONNX RoiAlign (opset 16, mode avg) of torchvision-style rois (K, 5) rows
    (batch_index, x1, y1, x2, y2): ``aligned`` is coordinate_transformation_mode
    'half_pixel', else 'output_half_pixel'."""
    from onnx import helper

    node = helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], mode="avg", output_height=out, output_width=out,
                            sampling_ratio=sampling_ratio, spatial_scale=spatial_scale,
                            coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")
    r = np.ascontiguousarray(rois[:, 1:], np.float32)
    bi = rois[:, 0].astype(np.int64)
    sess = session([node], [("x", np.float32, x.shape), ("rois", np.float32, r.shape), ("bi", np.int64, bi.shape)],
                   [("y", np.float32, 4)])
    return sess, {"x": x, "rois": r, "bi": bi}


# ----------------------------------------------------------------------------- peers

def _conv_peer(label, n, c, h, k, s, p, o, g):
    @peer(f"conv2d fwd {label}", LABEL)
    def factory(lib):
        rng = np.random.default_rng(0)  # the draw order of cases_conv's inputs()
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((o, c // g, k, k), dtype=np.float32) * 0.1
        b = rng.standard_normal(o, dtype=np.float32)
        return _runner(*conv2d_model(x, w, b, s, p, g))


for _shape in cases_conv.SHAPES:
    _conv_peer(*_shape)


def _pool_peer(kind, cfg):
    k, s, p = cases_pool.CONFIGS[cfg]

    @peer(f"{kind}_pool2d fwd N64 C64 56x56 {cfg}", LABEL)
    def factory(lib):
        return _runner(*pool2d_model(cases_pool._x(), kind, k, s, p))


for _cfg in cases_pool.CONFIGS:
    for _kind in ("max", "avg"):
        _pool_peer(_kind, _cfg)


def rnn_inputs(kind, T, B, D, H):
    """The inputs of cases_rnn's factory (same seed and draw order)."""
    G = cases_rnn.GATES[kind]
    rng = np.random.default_rng(0)
    sc = 1.0 / np.sqrt(H)
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    w_ih = rng.uniform(-sc, sc, (G * H, D)).astype(np.float32)
    w_hh = rng.uniform(-sc, sc, (G * H, H)).astype(np.float32)
    b_ih = rng.uniform(-sc, sc, G * H).astype(np.float32)
    b_hh = rng.uniform(-sc, sc, G * H).astype(np.float32)
    return x, w_ih, w_hh, b_ih, b_hh


def _rnn_peer(kind, T, B, D, H):
    @peer(f"{kind.upper()} T{T} B{B} D{D} H{H} fwd", LABEL)
    def factory(lib):
        return _runner(*rnn_model(kind, *rnn_inputs(kind, T, B, D, H)))


for _kind in ("lstm", "gru"):
    _rnn_peer(_kind, 100, 64, 128, 128)
    _rnn_peer(_kind, 100, 32, 128, 256)


def _sdpa_peer(B, H, L, D):
    @peer(f"sdpa fwd B{B} H{H} L{L} D{D}", LABEL)
    def factory(lib):
        q, k, v, _ = cases_attention._inputs(B, H, L, D)
        return _runner(*sdpa_model(q, k, v))


for _s in cases_attention.SHAPES:
    _sdpa_peer(*_s)


def _gemm_peer(m, n, k, label):
    @peer(f"sgemm {label} M{m} N{n} K{k}", LABEL)
    def factory(lib):
        return _runner(*matmul_model(cases_gemm._rand(m, k), cases_gemm._rand(k, n)))


for _m, _n, _k, _label in [(1024, 1024, 1024, "square"), (2048, 2048, 2048, "square"), (64, 3136, 576, "im2col"),
                           (256, 196, 2304, "im2col"), (32, 128, 1024, "small")]:
    _gemm_peer(_m, _n, _k, _label)


@peer("sgemm batched 256x(128x64 @ 64x128)", LABEL)
def _gemm_batched(lib):
    return _runner(*matmul_model(cases_gemm._rand(256, 128, 64), cases_gemm._rand(256, 64, 128)))


@peer("softmax fwd (4096, 10000)", LABEL)
def _softmax(lib):
    x, _ = cases_loss._logits()
    return _runner(*softmax_model(x))


@peer("cross_entropy fwd (4096, 10000)", LABEL)
def _cross_entropy(lib):
    return _runner(*cross_entropy_model(*cases_loss._logits()))


def _act_peer(name, case_name):
    @peer(case_name, LABEL)
    def factory(lib):
        return _runner(*activation_model(name, cases_loss._vec()))


for _name in cases_loss._NUMPY_ACTS:
    _act_peer(_name, f"{_name} fwd 4M")
_act_peer("gelu_exact", "gelu (exact) fwd 4M")


def _nms_peer(n):
    @peer(f"nms {n} random boxes IoU 0.5", LABEL)
    def factory(lib):
        return _runner(*nms_model(*cases_detection.random_boxes(n), 0.5))


for _n in (1000, 10000, 50000):
    _nms_peer(_n)


@peer("batched_nms 20000 boxes 80 classes IoU 0.5", LABEL)
def _batched_nms(lib):
    boxes, scores = cases_detection.random_boxes(20000)
    idxs = np.random.default_rng(1).integers(0, 80, 20000)
    return _runner(*nms_model(boxes, scores, 0.5, idxs, 80))


@peer("roi_align N2 C256 50x68 K512 7x7 sr2", LABEL)
def _roi_align(lib):
    rng = np.random.default_rng(0)  # the draw order of cases_detection's roi_align case
    x = rng.standard_normal((2, 256, 50, 68), dtype=np.float32)
    boxes, _ = cases_detection.random_boxes(512, extent=700, size=(16, 300))
    rois = np.concatenate([rng.integers(0, 2, (512, 1)).astype(np.float32), boxes], axis=1)
    return _runner(*roi_align_model(x, rois, 7, 1 / 16, 2, True))
