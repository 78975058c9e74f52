"""Training throughput of two sequence models of issue 9: the character-level LSTM language
model (one-hot input, hidden 256, sequences of 100, batch 32) and the date-translation
attention model (bidirectional LSTM encoder + attention decoder), one optimiser step per
call, reported in samples/s.

The date model's torch peer computes the attention context as oxinet's model does, a
batched product ``(alpha.unsqueeze(1) @ a).squeeze(1)``; ``torch_mulsum`` is the same
PyTorch model with the elementwise form ``(alpha.unsqueeze(-1) * a).sum(1)``, kept as a
reference because PyTorch runs that form faster (run it under PyTorch's interpreter with
``OXINET_BENCH_PYTHON_TORCH_MULSUM``, like ``OXINET_BENCH_PYTHON_TORCH``)."""

from __future__ import annotations

import numpy as np

from oxinet.benchmarks.harness import case

_V, _H, _T, _B = 64, 256, 100, 32          # char LM
_DB, _TX, _TY, _SV, _TV = 100, 30, 11, 40, 15  # date model: batch, source/target lengths, vocabularies


def _char_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, _V, size=(_B, _T))
    y = rng.integers(0, _V, size=(_B, _T))
    return x, y


@case(f"char-LM LSTM train step V{_V} H{_H} T{_T} B{_B} Adam", group="textmodels", peers=("torch",),
      items=_B, unit="samples")
def char_lm_lstm_step(lib):
    x, y = _char_data()
    onehot = np.eye(_V, dtype=np.float32)[x]
    if lib == "oxinet":
        import oxinet as ox
        import oxinet.nn.functional as F
        from oxinet import nn

        ox.manual_seed(0)
        lstm, fc = nn.LSTM(_V, _H, batch_first=True), nn.Linear(_H, _V)
        params = list(lstm.parameters()) + list(fc.parameters())
        opt = ox.optim.Adam(params, lr=1e-3)
        tx = ox.tensor(onehot)

        def step():
            out, _ = lstm(tx)
            loss = F.cross_entropy(fc(out).reshape(-1, _V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()

        return step
    if lib == "torch":
        import torch
        from torch import nn

        torch.manual_seed(0)
        lstm, fc = nn.LSTM(_V, _H, batch_first=True), nn.Linear(_H, _V)
        params = list(lstm.parameters()) + list(fc.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        tx, ty = torch.from_numpy(onehot), torch.from_numpy(y.reshape(-1))

        def step():
            out, _ = lstm(tx)
            loss = nn.functional.cross_entropy(fc(out).reshape(-1, _V), ty)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()

        return step
    return None


def _date_data():
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, _TX + 1, size=_DB)
    x = rng.integers(4, _SV, size=(_DB, _TX))
    x[np.arange(_TX)[None, :] >= lengths[:, None]] = 0
    y_in = rng.integers(3, _TV, size=(_DB, _TY))
    y_out = rng.integers(3, _TV, size=(_DB, _TY))
    return x, lengths, y_in, y_out


@case(f"date-translation attention model train step B{_DB} Tx{_TX} Ty{_TY} Adam", group="textmodels",
      peers=("torch", "torch_mulsum"), items=_DB, unit="samples")
def date_attention_step(lib):
    x, lengths, y_in, y_out = _date_data()
    if lib == "oxinet":
        import oxinet as ox
        import oxinet.nn.functional as F
        from oxinet import nn
        from oxinet.text.seq2seq import AttentionNMT

        ox.manual_seed(0)
        model = AttentionNMT(_SV, _TV)
        opt = ox.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            loss = F.cross_entropy(model(x, lengths, y_in).reshape(-1, _TV), y_out.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()

        return step
    if lib in ("torch", "torch_mulsum"):
        import torch
        from torch import nn

        torch.manual_seed(0)
        mulsum = lib == "torch_mulsum"

        class Torch(nn.Module):  # the same architecture as oxinet.text.seq2seq.AttentionNMT
            def __init__(self, emb=32, enc=64, dec=128, energy=16):
                super().__init__()
                self.src_emb = nn.Embedding(_SV, emb, padding_idx=0)
                self.encoder = nn.LSTM(emb, enc, batch_first=True, bidirectional=True)
                self.tgt_emb = nn.Embedding(_TV, emb)
                self.energy_s = nn.Linear(dec, energy, bias=False)
                self.energy_a = nn.Linear(2 * enc, energy)
                self.energy_v = nn.Linear(energy, 1, bias=False)
                self.cell = nn.LSTMCell(2 * enc + emb, dec)
                self.out = nn.Linear(dec, _TV)
                self.dec = dec

            def forward(self, x, lengths, y_in):
                packed = nn.utils.rnn.pack_padded_sequence(self.src_emb(x), lengths, batch_first=True,
                                                           enforce_sorted=False)
                a, _ = self.encoder(packed)
                a, _ = nn.utils.rnn.pad_packed_sequence(a, batch_first=True, total_length=x.shape[1])
                mask = torch.arange(x.shape[1])[None, :] >= lengths[:, None]
                pa = self.energy_a(a)
                h = torch.zeros(x.shape[0], self.dec)
                c = torch.zeros(x.shape[0], self.dec)
                outs = []
                for t in range(y_in.shape[1]):
                    e = self.energy_v(torch.tanh(self.energy_s(h).unsqueeze(1) + pa)).squeeze(-1)
                    alpha = e.masked_fill(mask, -1e9).softmax(-1)
                    if mulsum:  # the elementwise formulation, for reference
                        ctx = (alpha.unsqueeze(-1) * a).sum(1)
                    else:  # as oxinet's model: a batched product
                        ctx = (alpha.unsqueeze(1) @ a).squeeze(1)
                    h, c = self.cell(torch.cat([ctx, self.tgt_emb(y_in[:, t])], -1), (h, c))
                    outs.append(self.out(h))
                return torch.stack(outs, 1)

        model = Torch()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        tx, tl = torch.from_numpy(x), torch.from_numpy(lengths)
        tyi, tyo = torch.from_numpy(y_in), torch.from_numpy(y_out.reshape(-1))

        def step():
            loss = nn.functional.cross_entropy(model(tx, tl, tyi).reshape(-1, _TV), tyo)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()

        return step
    return None
