"""Weight penalties to add to a loss (course: (lambda / 2m) sum ||W||_F^2 and L1)."""

from __future__ import annotations


def _weights(parameters, only_weights):
    out = []
    for item in parameters:
        name, p = item if isinstance(item, tuple) else (None, item)
        if only_weights and name is not None and (name.endswith("bias") or p.ndim < 2):
            continue
        out.append(p)
    return out


def l2_penalty(parameters, lam: float, scale: float = 0.5, only_weights: bool = True):
    """``lam * scale * sum ||W||^2`` as a Tensor in the graph (scale=0.5 gives (lambda/2) sum W^2;
    the course divides lambda by the batch size m: pass lam=lambda/m). Pass
    ``model.named_parameters()`` to skip biases and 1-D parameters."""
    total = None
    for p in _weights(parameters, only_weights):
        term = (p * p).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("l2_penalty: no parameters given")
    return total * (lam * scale)


def l1_penalty(parameters, lam: float, only_weights: bool = True):
    """``lam * sum |W|`` as a Tensor in the graph."""
    total = None
    for p in _weights(parameters, only_weights):
        term = p.abs().sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("l1_penalty: no parameters given")
    return total * lam
