"""Functional ops on NumPy arrays: arrays in, arrays out.

Each forward op that has parameters to learn comes with a ``*_backward``. Argument
names and meanings follow ``torch.nn.functional`` / ``torchvision.ops`` where those
have the op. float32 is the default dtype and float64 is kept; other dtypes raise
``TypeError`` naming the argument.
"""

from oxinet.ops.linalg import gemm, matmul
from oxinet.ops.activation import (
    elu, elu_backward, gelu, gelu_backward, leaky_relu, leaky_relu_backward, log_softmax,
    log_softmax_backward, relu, relu_backward, selu, selu_backward, sigmoid, sigmoid_backward,
    silu, silu_backward, softmax, softmax_backward, softplus, softplus_backward, tanh, tanh_backward,
)
from oxinet.ops.attention import scaled_dot_product_attention, scaled_dot_product_attention_backward
from oxinet.ops.embedding import embedding, embedding_backward
from oxinet.ops.loss import (
    binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_with_grad, cross_entropy, cross_entropy_backward,
    cross_entropy_with_grad, nll_loss, nll_loss_backward,
)

__all__ = [
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
]
