"""``torch.nn.utils.rnn``-shaped helpers for padded batches of variable-length sequences.

oxinet's recurrent kernels take a padded batch plus its lengths, so a
:class:`PackedSequence` here keeps the *padded* tensor (``data``, time-major or batch-first
as packed) and the lengths, instead of PyTorch's interleaved packed layout. The usual
PyTorch code runs unchanged::

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, (h_n, c_n) = lstm(packed)          # h_n, c_n at each sequence's own last step
    y, lengths = pad_packed_sequence(out, batch_first=True)
"""

from __future__ import annotations

import numpy as np

from oxinet.tensor import Tensor, stack

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence"]


class PackedSequence:
    """A padded batch with its lengths: ``data`` (T, B, *) or (B, T, *) per ``batch_first``,
    ``lengths`` (B,) int64 (also available as ``batch_sizes``-free ``lengths``)."""

    __slots__ = ("data", "lengths", "batch_first")

    def __init__(self, data, lengths, batch_first=False):
        self.data, self.lengths, self.batch_first = data, lengths, batch_first

    def __repr__(self):
        return f"PackedSequence(data shape={tuple(self.data.shape)}, lengths={self.lengths.tolist()}, " \
               f"batch_first={self.batch_first})"


def _lengths(lengths):
    arr = lengths._data if isinstance(lengths, Tensor) else np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"pack_padded_sequence: 'lengths' must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64).reshape(-1)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Wrap a padded batch (T, B, *) (or (B, T, *)) and its lengths for the RNN modules.
    ``enforce_sorted=True`` requires decreasing lengths, as PyTorch does."""
    lens = _lengths(lengths)
    x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
    b = x.shape[0] if batch_first else x.shape[1]
    t = x.shape[1] if batch_first else x.shape[0]
    if lens.shape != (b,):
        raise ValueError(f"pack_padded_sequence: 'lengths' has {lens.size} entries but the batch has {b}")
    if b and (lens.min() < 1 or lens.max() > t):
        raise ValueError(f"pack_padded_sequence: 'lengths' must lie in 1..{t}, got {lens.tolist()}")
    if enforce_sorted and np.any(np.diff(lens) > 0):
        raise ValueError("pack_padded_sequence: 'lengths' must be sorted in decreasing order when "
                         "enforce_sorted=True")
    return PackedSequence(x, lens, batch_first)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """(padded tensor, lengths) from a :class:`PackedSequence`; the time axis is cut to
    max(lengths) (or padded to ``total_length``)."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got {type(sequence).__name__}")
    x, lens = sequence.data, sequence.lengths
    if sequence.batch_first != batch_first:
        x = x.transpose(0, 1)
    t_axis = 1 if batch_first else 0
    t_max = int(lens.max()) if lens.size else 0
    want = t_max if total_length is None else int(total_length)
    if want < t_max:
        raise ValueError(f"pad_packed_sequence: 'total_length' {total_length} is less than the longest "
                         f"sequence ({t_max})")
    cur = x.shape[t_axis]
    if want <= cur:
        x = x[:, :want] if batch_first else x[:want]
    else:
        from oxinet.tensor import pad

        amounts = [0, 0] * (x.ndim - 1 - t_axis) + [0, want - cur]
        x = pad(x, amounts)
    if padding_value != 0.0:
        steps = np.arange(want)
        mask = steps[None, :] >= lens[:, None] if batch_first else steps[:, None] >= lens[None, :]
        mask = mask.reshape(mask.shape + (1,) * (x.ndim - 2))
        from oxinet.tensor import where

        x = where(mask, padding_value, x)
    return x, Tensor(lens.copy())


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors of shapes (L_i, *) into (max L, B, *) (or (B, max L, *)), padding with
    ``padding_value`` (differentiable)."""
    from oxinet.tensor import pad

    seqs = [s if isinstance(s, Tensor) else Tensor(np.asarray(s)) for s in sequences]
    if not seqs:
        raise ValueError("pad_sequence: 'sequences' is empty")
    t = max(s.shape[0] for s in seqs)
    out = []
    for s in seqs:
        extra = t - s.shape[0]
        amounts = [0, 0] * (s.ndim - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        out.append(pad(s, amounts, value=padding_value) if extra else s)
    return stack(out, 1 if not batch_first else 0)


def pack_sequence(sequences, enforce_sorted=True):
    """pad_sequence then pack_padded_sequence with the sequences' own lengths."""
    lens = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lens, enforce_sorted=enforce_sorted)
