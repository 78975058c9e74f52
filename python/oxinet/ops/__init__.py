"""Functional ops on NumPy arrays: arrays in, arrays out.

Each forward op that has parameters to learn comes with a ``*_backward``. Argument
names and meanings follow ``torch.nn.functional`` / ``torchvision.ops`` where those
have the op. float32 is the default dtype and float64 is kept; other dtypes raise
``TypeError`` naming the argument.
"""

from oxinet.ops.conv import (
    col2im,
    conv1d,
    conv1d_backward,
    conv2d,
    conv2d_backward,
    conv3d,
    conv3d_backward,
    conv_transpose1d,
    conv_transpose1d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    conv_transpose3d,
    conv_transpose3d_backward,
    fold,
    im2col,
    unfold,
)
from oxinet.ops.linalg import gemm, matmul
from oxinet.ops.pool import *  # noqa: F401,F403  (pooling family: see oxinet.ops.pool.__all__)
from oxinet.ops.pool import __all__ as _pool_all
from oxinet.ops.interpolate import interpolate, interpolate_backward
from oxinet.ops import boxes
from oxinet.ops.boxes import (
    batched_nms, box_area, box_convert, box_iou, clip_boxes_to_image, elementwise_box_iou,
    elementwise_generalized_box_iou, generalized_box_iou, nms, remove_small_boxes, roi_align,
    roi_align_backward, roi_pool, roi_pool_backward, soft_nms,
)

__all__ = [
    "col2im",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv3d",
    "conv3d_backward",
    "conv_transpose1d",
    "conv_transpose1d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose3d",
    "conv_transpose3d_backward",
    "fold",
    "gemm",
    "im2col",
    "matmul",
    "unfold",
]
__all__ = ["gemm", "matmul"]
__all__ += _pool_all
__all__ += ["interpolate", "interpolate_backward"]
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
from oxinet.ops.activation import (
    elu, elu_backward, gelu, gelu_backward, leaky_relu, leaky_relu_backward, log_softmax,
    log_softmax_backward, relu, relu_backward, selu, selu_backward, sigmoid, sigmoid_backward,
    silu, silu_backward, softmax, softmax_backward, softplus, softplus_backward, tanh, tanh_backward,
from oxinet.ops.attention import scaled_dot_product_attention, scaled_dot_product_attention_backward
from oxinet.ops.embedding import embedding, embedding_backward
from oxinet.ops.loss import (
    binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_with_grad, cross_entropy, cross_entropy_backward,
    cross_entropy_with_grad, nll_loss, nll_loss_backward,
    "gemm", "matmul",
    # activations and softmax
    "elu", "elu_backward", "gelu", "gelu_backward", "leaky_relu", "leaky_relu_backward",
    "log_softmax", "log_softmax_backward", "relu", "relu_backward", "selu", "selu_backward",
    "sigmoid", "sigmoid_backward", "silu", "silu_backward", "softmax", "softmax_backward",
    "softplus", "softplus_backward", "tanh", "tanh_backward",
    # attention
    "scaled_dot_product_attention", "scaled_dot_product_attention_backward",
    # embedding
    "embedding", "embedding_backward",
    # losses
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_with_grad", "cross_entropy", "cross_entropy_backward",
    "cross_entropy_with_grad", "nll_loss", "nll_loss_backward",
__all__ += ["boxes"] + boxes.__all__
