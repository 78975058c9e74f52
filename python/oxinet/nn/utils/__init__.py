"""Gradient clipping, parameter/vector conversion and weight penalties."""

from oxinet.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm
from oxinet.nn.utils.convert import parameters_to_vector, vector_to_parameters
from oxinet.nn.utils.penalty import l1_penalty, l2_penalty
from oxinet.nn.utils import rnn

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "parameters_to_vector",
           "vector_to_parameters", "l1_penalty", "l2_penalty", "rnn"]
