"""Functional ops on NumPy arrays: arrays in, arrays out.

Each forward op that has parameters to learn comes with a ``*_backward``. Argument
names and meanings follow ``torch.nn.functional`` / ``torchvision.ops`` where those
have the op. float32 is the default dtype and float64 is kept; other dtypes raise
``TypeError`` naming the argument.
"""

from oxinet.ops.linalg import gemm, matmul
from oxinet.ops.rnn import (
    RNNCache,
    gru,
    gru_backward,
    gru_cell,
    gru_cell_backward,
    gru_stack,
    gru_stack_backward,
    lstm,
    lstm_backward,
    lstm_cell,
    lstm_cell_backward,
    lstm_stack,
    lstm_stack_backward,
    rnn,
    rnn_backward,
    rnn_cell,
    rnn_cell_backward,
    rnn_stack,
    rnn_stack_backward,
)

__all__ = [
    "gemm",
    "matmul",
    # recurrent
    "RNNCache",
    "rnn_cell",
    "rnn_cell_backward",
    "gru_cell",
    "gru_cell_backward",
    "lstm_cell",
    "lstm_cell_backward",
    "rnn",
    "rnn_backward",
    "gru",
    "gru_backward",
    "lstm",
    "lstm_backward",
    "rnn_stack",
    "rnn_stack_backward",
    "gru_stack",
    "gru_stack_backward",
    "lstm_stack",
    "lstm_stack_backward",
]
