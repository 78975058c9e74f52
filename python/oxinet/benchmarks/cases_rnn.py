"""Recurrent-layer cases (group "rnn"): fused LSTM/GRU sequences, forward and
forward+backward (one training step of the layer: forward with the saved state, then
BPTT with gradients for every output).

Peers: "numpy", the same algorithm written with NumPy (one input-projection GEMM, a
Python time loop with h @ W_hh^T and the gate arithmetic, and the mirrored backward
with the weight gradients as large GEMMs); "torch", torch.nn.LSTM/GRU when installed.
FLOP counts: forward 2*T*B*(D+H)*G*H; forward+backward three times that.
"""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

GATES = {"lstm": 4, "gru": 3}


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_forward(kind, x, w_ih, w_hh, b_ih, b_hh):
    """Returns y and the saved state (activated gates, states) of a NumPy loop."""
    T, B, D = x.shape
    H = w_hh.shape[1]
    G = GATES[kind]
    xp = (x.reshape(T * B, D) @ w_ih.T + b_ih).reshape(T, B, G * H)
    hs = np.zeros((T + 1, B, H), x.dtype)
    gates = np.empty((T, B, G * H), x.dtype)
    if kind == "lstm":
        cs = np.zeros((T + 1, B, H), x.dtype)
        for t in range(T):
            g = xp[t] + hs[t] @ w_hh.T + b_hh
            ifo = _sig(g[:, np.r_[0:2 * H, 3 * H:4 * H]])
            i, f, o = ifo[:, :H], ifo[:, H:2 * H], ifo[:, 2 * H:]
            gg = np.tanh(g[:, 2 * H:3 * H])
            cs[t + 1] = f * cs[t] + i * gg
            hs[t + 1] = o * np.tanh(cs[t + 1])
            gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:] = i, f, gg, o
        return hs[1:], (hs, cs, gates, None)
    hns = np.empty((T, B, H), x.dtype)
    for t in range(T):
        hh = hs[t] @ w_hh.T + b_hh
        rz = _sig(xp[t, :, :2 * H] + hh[:, :2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = np.tanh(xp[t, :, 2 * H:] + r * hh[:, 2 * H:])
        hs[t + 1] = n + z * (hs[t] - n)
        gates[t, :, :2 * H], gates[t, :, 2 * H:] = rz, n
        hns[t] = hh[:, 2 * H:]
    return hs[1:], (hs, None, gates, hns)


def numpy_backward(kind, x, w_ih, w_hh, saved, dy, need_dx=True):
    hs, cs, gates, hns = saved
    T, B, D = x.shape
    H = w_hh.shape[1]
    G = GATES[kind]
    dgx = np.empty((T, B, G * H), x.dtype)
    dgh = dgx if kind == "lstm" else np.empty((T, B, G * H), x.dtype)
    dh = np.zeros((B, H), x.dtype)
    dc = np.zeros((B, H), x.dtype)
    for t in range(T - 1, -1, -1):
        dh = dh + dy[t]
        g = gates[t]
        if kind == "lstm":
            i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
            tc = np.tanh(cs[t + 1])
            dc = dc + dh * o * (1 - tc * tc)
            dgx[t, :, :H] = dc * gg * i * (1 - i)
            dgx[t, :, H:2 * H] = dc * cs[t] * f * (1 - f)
            dgx[t, :, 2 * H:3 * H] = dc * i * (1 - gg * gg)
            dgx[t, :, 3 * H:] = dh * tc * o * (1 - o)
            dc = dc * f
            dh = dgx[t] @ w_hh
        else:
            r, z, n = g[:, :H], g[:, H:2 * H], g[:, 2 * H:]
            dn = dh * (1 - z) * (1 - n * n)
            dz = dh * (hs[t] - n) * z * (1 - z)
            dr = dn * hns[t] * r * (1 - r)
            dgx[t, :, :H], dgx[t, :, H:2 * H], dgx[t, :, 2 * H:] = dr, dz, dn
            dgh[t, :, :2 * H] = dgx[t, :, :2 * H]
            dgh[t, :, 2 * H:] = dn * r
            dh = dgh[t] @ w_hh + dh * z
    dgx2 = dgx.reshape(T * B, G * H)
    dgh2 = dgh.reshape(T * B, G * H)
    dx = (dgx2 @ w_ih).reshape(T, B, D) if need_dx else None
    dw_ih = dgx2.T @ x.reshape(T * B, D)
    dw_hh = dgh2.T @ hs[:T].reshape(T * B, H)
    return dx, dh, dw_ih, dw_hh, dgx2.sum(0), dgh2.sum(0)


def _rnn_case(kind, T, B, D, H, backward, need_dx=True):
    G = GATES[kind]
    flops = 2.0 * T * B * (D + H) * G * H * (3 if backward else 1)
    if backward and not need_dx:
        flops -= 2.0 * T * B * D * G * H
    label = f"{kind.upper()} T{T} B{B} D{D} H{H} {'fwd+bwd' if backward else 'fwd'}{'' if need_dx else ' no-dx'}"

    @case(label, group="rnn", flops=flops, peers=("numpy", "torch"))
    def factory(lib):
        rng = np.random.default_rng(0)
        s = 1.0 / np.sqrt(H)
        x = rng.standard_normal((T, B, D), dtype=np.float32)
        w_ih = (rng.uniform(-s, s, (G * H, D))).astype(np.float32)
        w_hh = (rng.uniform(-s, s, (G * H, H))).astype(np.float32)
        b_ih = (rng.uniform(-s, s, G * H)).astype(np.float32)
        b_hh = (rng.uniform(-s, s, G * H)).astype(np.float32)
        dy = rng.standard_normal((T, B, H), dtype=np.float32)
        if lib == "oxinet":
            import oxinet.ops as F

            if kind == "lstm":
                if not backward:
                    return lambda: F.lstm(x, None, None, w_ih, w_hh, b_ih, b_hh)

                def step():
                    y, h, c, cache = F.lstm(x, None, None, w_ih, w_hh, b_ih, b_hh, return_cache=True)
                    return F.lstm_backward(dy, None, None, cache, need_dx=need_dx)

                return step
            if not backward:
                return lambda: F.gru(x, None, w_ih, w_hh, b_ih, b_hh)

            def step():
                y, h, cache = F.gru(x, None, w_ih, w_hh, b_ih, b_hh, return_cache=True)
                return F.gru_backward(dy, None, cache, need_dx=need_dx)

            return step
        if lib == "numpy":
            if not backward:
                return lambda: numpy_forward(kind, x, w_ih, w_hh, b_ih, b_hh)

            def step():
                y, saved = numpy_forward(kind, x, w_ih, w_hh, b_ih, b_hh)
                return numpy_backward(kind, x, w_ih, w_hh, saved, dy, need_dx)

            return step
        if lib == "torch":
            import torch

            mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(D, H)
            tx = torch.from_numpy(x)
            tdy = torch.from_numpy(dy)
            if not backward:
                def fwd():
                    with torch.no_grad():
                        return mod(tx)

                return fwd
            tx.requires_grad_(need_dx)

            def step():
                y, _ = mod(tx)
                y.backward(tdy)

            return step
        return None

    return factory


for _kind in ("lstm", "gru"):
    for _bw in (False, True):
        _rnn_case(_kind, 100, 64, 128, 128, _bw)
        _rnn_case(_kind, 100, 32, 128, 256, _bw)
_rnn_case("gru", 500, 1, 64, 128, True)
_rnn_case("lstm", 500, 1, 64, 128, True)
# The char-LM's layer (one-hot input of 64 symbols): no gradient for the data.
_rnn_case("lstm", 100, 32, 64, 256, True)
_rnn_case("lstm", 100, 32, 64, 256, True, need_dx=False)


@case("lstm_cell B64 D128 H256 fwd", group="rnn", flops=2.0 * 64 * 4 * 256 * (128 + 256), peers=("numpy",))
def lstm_cell_fwd(lib):
    rng = np.random.default_rng(0)
    x, h, c = (rng.standard_normal(s, dtype=np.float32) for s in ((64, 128), (64, 256), (64, 256)))
    w_ih = rng.standard_normal((1024, 128), dtype=np.float32) * 0.1
    w_hh = rng.standard_normal((1024, 256), dtype=np.float32) * 0.1
    b = rng.standard_normal(1024, dtype=np.float32) * 0.1
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.lstm_cell(x, h, c, w_ih, w_hh, b, b)

    def numpy_lstm_cell():
        i, f, g, o = np.split(x @ w_ih.T + h @ w_hh.T + 2 * b, 4, axis=1)  # gate order i, f, g, o
        c_new = _sig(f) * c + _sig(i) * np.tanh(g)
        return _sig(o) * np.tanh(c_new), c_new

    return numpy_lstm_cell if lib == "numpy" else None


@case("gru_cell B64 D128 H256 fwd", group="rnn", flops=2.0 * 64 * 3 * 256 * (128 + 256), peers=("numpy",))
def gru_cell_fwd(lib):
    rng = np.random.default_rng(0)
    x, h = (rng.standard_normal(s, dtype=np.float32) for s in ((64, 128), (64, 256)))
    w_ih = rng.standard_normal((768, 128), dtype=np.float32) * 0.1
    w_hh = rng.standard_normal((768, 256), dtype=np.float32) * 0.1
    b_ih = rng.standard_normal(768, dtype=np.float32) * 0.1
    b_hh = rng.standard_normal(768, dtype=np.float32) * 0.1
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)

    def numpy_gru_cell():
        gx = x @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        rz = _sig(gx[:, :512] + gh[:, :512])  # gate order r, z, n
        r, z = rz[:, :256], rz[:, 256:]
        n = np.tanh(gx[:, 512:] + r * gh[:, 512:])
        return n + z * (h - n)

    return numpy_gru_cell if lib == "numpy" else None


# The date-translation decoder's cell (issue 9): B100, input 160, hidden 128. The backward
# recomputes the step (as nn.LSTMCell's backward asks for it): forward products + four
# gradient products.
@case("lstm_cell B100 D160 H128 fwd", group="rnn", flops=2.0 * 100 * 512 * (160 + 128), peers=("numpy",))
def lstm_cell_fwd_date(lib):
    x, h, c, dh, dc, w_ih, w_hh, b = _date_cell()
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.lstm_cell(x, h, c, w_ih, w_hh, b, b)
    if lib == "numpy":
        return lambda: _numpy_lstm_cell_steps(x, h, c, w_ih, w_hh, b)[:2]
    return None


@case("lstm_cell B100 D160 H128 bwd", group="rnn", flops=3 * 2.0 * 100 * 512 * (160 + 128), peers=("numpy",))
def lstm_cell_bwd_date(lib):
    x, h, c, dh, dc, w_ih, w_hh, b = _date_cell()
    if lib == "oxinet":
        import oxinet.ops as F

        return lambda: F.lstm_cell_backward(dh, dc, x, h, c, w_ih, w_hh, b, b)
    if lib != "numpy":
        return None

    def numpy_bwd():
        _, c_new, (i, f, g, o) = _numpy_lstm_cell_steps(x, h, c, w_ih, w_hh, b)
        tc = np.tanh(c_new)
        dct = dc + dh * o * (1 - tc * tc)
        da = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f), dct * i * (1 - g * g),
                             dh * tc * o * (1 - o)], axis=1)
        db = da.sum(0)
        return da @ w_ih, da @ w_hh, dct * f, da.T @ x, da.T @ h, db, db

    return numpy_bwd


def _date_cell():
    rng = np.random.default_rng(0)
    x, h, c, dh, dc = (rng.standard_normal(s, dtype=np.float32) for s in ((100, 160),) + ((100, 128),) * 4)
    w_ih = rng.standard_normal((512, 160), dtype=np.float32) * 0.1
    w_hh = rng.standard_normal((512, 128), dtype=np.float32) * 0.1
    b = rng.standard_normal(512, dtype=np.float32) * 0.1
    return x, h, c, dh, dc, w_ih, w_hh, b


def _numpy_lstm_cell_steps(x, h, c, w_ih, w_hh, b):
    a = x @ w_ih.T + h @ w_hh.T + 2 * b
    i, f, o = (_sig(a[:, k * 128:(k + 1) * 128]) for k in (0, 1, 3))
    g = np.tanh(a[:, 256:384])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, (i, f, g, o)
