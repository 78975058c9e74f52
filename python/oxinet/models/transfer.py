"""Transfer learning: freeze/unfreeze parameters by name pattern or layer, replace the head.

Freezing sets ``requires_grad=False``: frozen parameters get no gradient, so no optimizer
(with or without weight decay) changes them. BatchNorm running statistics are buffers, not
parameters: to keep them fixed too, put the frozen BatchNorm layers in eval mode
(``set_batchnorm_eval``) after every ``model.train()``.
"""

from __future__ import annotations

import fnmatch
import re

from oxinet import nn


def _select(model, patterns, layers, who):
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: 'model' must be an oxinet.nn.Module, got {type(model).__name__}")
    named = list(model.named_parameters())
    if patterns is None and layers is None:
        return named
    chosen = {}
    if patterns is not None:
        if isinstance(patterns, str):
            patterns = [patterns]
        for pat in patterns:
            if not isinstance(pat, str):
                raise TypeError(f"{who}: 'patterns' must be strings, got {type(pat).__name__}")
            hits = [(n, p) for n, p in named
                    if fnmatch.fnmatchcase(n, pat) or n == pat or n.startswith(pat + ".")
                    or (pat.startswith("re:") and re.search(pat[3:], n))]
            if not hits:
                raise ValueError(f"{who}: 'patterns' entry {pat!r} matches no parameter name "
                                 f"(names look like {[n for n, _ in named[:3]]})")
            chosen.update({id(p): (n, p) for n, p in hits})
    if layers is not None:
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        for layer in layers:
            if isinstance(layer, str):
                try:
                    layer = model.get_submodule(layer)
                except AttributeError as e:
                    raise ValueError(f"{who}: 'layers' entry {layer!r} is not a submodule of the model") from e
            if not isinstance(layer, nn.Module):
                raise TypeError(f"{who}: 'layers' must hold modules or their dotted names, got {type(layer).__name__}")
            ids = {id(p) for p in layer.parameters()}
            chosen.update({id(p): (n, p) for n, p in named if id(p) in ids})
    return [v for v in chosen.values()]


def freeze(model, patterns=None, layers=None) -> list:
    """Set ``requires_grad=False`` on the selected parameters (all when neither ``patterns``
    nor ``layers`` is given). ``patterns``: parameter names, glob patterns (``"layer1.*"``),
    module prefixes (``"features"``) or ``"re:<regex>"``; ``layers``: modules or dotted module
    names. Returns the frozen parameter names."""
    sel = _select(model, patterns, layers, "freeze")
    for _, p in sel:
        p.requires_grad_(False)
    return [n for n, _ in sel]


def unfreeze(model, patterns=None, layers=None) -> list:
    """The reverse of :func:`freeze`; returns the unfrozen parameter names."""
    sel = _select(model, patterns, layers, "unfreeze")
    for _, p in sel:
        p.requires_grad_(True)
    return [n for n, _ in sel]


def trainable_parameters(model) -> list:
    """The parameters that still require grad (pass these to the optimizer)."""
    return [p for p in model.parameters() if p.requires_grad]


def find_head(model) -> str:
    """Dotted name of the classification head: the last ``Linear`` in registration order."""
    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name = n
    if name is None:
        raise ValueError(f"find_head: {type(model).__name__} has no nn.Linear layer; pass 'name' explicitly")
    return name


def replace_head(model, num_classes: int, name: str | None = None, bias: bool = True):
    """Replace the head Linear (``name`` or :func:`find_head`) by a freshly initialised
    ``Linear(in_features, num_classes)`` in the same place; returns the new layer."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"replace_head: 'num_classes' must be a positive int, got {num_classes!r}")
    name = find_head(model) if name is None else name
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"replace_head: 'name' {name!r} is a {type(old).__name__}, not nn.Linear")
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    new = nn.Linear(old.in_features, num_classes, bias=bias, dtype=old.weight.dtype)
    setattr(parent, attr, new)
    return new


def set_batchnorm_eval(model, only_frozen: bool = True):
    """Put BatchNorm layers (those whose parameters are frozen, or all) in eval mode so that
    their running statistics stay fixed during fine-tuning."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            if not only_frozen or all(not p.requires_grad for p in m.parameters(recurse=False)):
                m.eval()
    return model


def fine_tune(model, num_classes: int | None = None, train: list | tuple | str | None = None) -> list:
    """Prepare a pretrained ``model`` for fine-tuning: optionally replace its head with a new
    ``num_classes`` one, freeze everything except the head and the ``train`` patterns
    (e.g. ``"layer4"``), and return the trainable parameters for the optimizer."""
    head = replace_head(model, num_classes) if num_classes is not None else model.get_submodule(find_head(model))
    freeze(model)
    unfreeze(model, layers=[head])
    if train is not None:
        unfreeze(model, patterns=train)
    return trainable_parameters(model)
