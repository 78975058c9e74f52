"""Classification metrics on NumPy arrays, and the course's single-number evaluation helpers.

Conventions (scikit-learn's): ``confusion_matrix[i, j]`` counts samples of true class ``i``
predicted as class ``j``. Predictions may be class labels ``(N,)``, class scores/logits
``(N, C)`` (argmax is taken) or, for binary problems, probabilities ``(N,)`` / ``(N, 1)``
(thresholded at 0.5). Precision/recall/F1 with no predicted (or no true) samples for a
class return ``zero_division`` (default 0.0) instead of dividing by zero.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "precision",
    "recall",
    "f1_score",
    "fbeta_score",
    "precision_recall_f1",
    "harmonic_mean",
    "weighted_sum",
    "select_model",
]


def _labels(y_true: Any, who: str) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{who}: 'y_true' must be 1-D class labels, got shape {y.shape}")
    if y.size and not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        if np.issubdtype(y.dtype, np.floating) and np.array_equal(y, np.round(y)):
            return y.astype(np.int64)
        raise TypeError(f"{who}: 'y_true' must hold integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64)


def _predicted_labels(y_pred: Any, n: int, who: str, threshold: float = 0.5) -> np.ndarray:
    p = np.asarray(y_pred)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 2:
        if p.shape[1] == 0:
            raise ValueError(f"{who}: 'y_pred' scores have no classes (shape {p.shape})")
        lab = np.argmax(p, axis=1)
    elif p.ndim == 1:
        if np.issubdtype(p.dtype, np.floating) and p.size and not np.array_equal(p, np.round(p)):
            lab = (p >= threshold).astype(np.int64)
        else:
            lab = p.astype(np.int64)
    else:
        raise ValueError(f"{who}: 'y_pred' must be labels (N,) or scores (N, C), got shape {p.shape}")
    if len(lab) != n:
        raise ValueError(f"{who}: 'y_pred' has {len(lab)} samples (shape {p.shape}) but 'y_true' has {n}")
    return lab.astype(np.int64)


def accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> float:
    """Fraction of correct predictions. ``y_pred``: labels, scores ``(N, C)`` or binary
    probabilities (``>= threshold`` counts as class 1). Empty input gives ``nan``."""
    yt = _labels(y_true, "accuracy")
    yp = _predicted_labels(y_pred, len(yt), "accuracy", threshold)
    if len(yt) == 0:
        return float("nan")
    return float(np.mean(yt == yp))


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    ``scores`` is ``(N, C)``. Ties are resolved in the sample's favour only as far as the
    true class's rank counts classes with a *strictly* higher score (rank < k is correct).
    """
    who = "top_k_accuracy"
    yt = _labels(y_true, who)
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"{who}: 'scores' must have shape (N, C), got {s.shape}")
    if s.shape[0] != len(yt):
        raise ValueError(f"{who}: 'scores' has {s.shape[0]} rows (shape {s.shape}) but 'y_true' has {len(yt)} labels")
    k = operator.index(k)
    if k < 1:
        raise ValueError(f"{who}: 'k' must be >= 1, got {k}")
    if len(yt) == 0:
        return float("nan")
    if yt.min() < 0 or yt.max() >= s.shape[1]:
        raise ValueError(f"{who}: 'y_true' labels must lie in [0, {s.shape[1]}) for {s.shape[1]} score columns")
    true_score = s[np.arange(len(yt)), yt]
    rank = (s > true_score[:, None]).sum(axis=1)
    return float(np.mean(rank < k))


def confusion_matrix(
    y_true: Any, y_pred: Any, num_classes: int | None = None, normalize: str | None = None
) -> np.ndarray:
    """``(C, C)`` counts: row = true class, column = predicted class (int64).

    ``num_classes`` defaults to ``max(labels) + 1``. ``normalize``: ``'true'`` (rows sum
    to 1), ``'pred'`` (columns sum to 1), ``'all'`` or None; normalised matrices are
    float64 with 0 for empty rows/columns.
    """
    who = "confusion_matrix"
    yt = _labels(y_true, who)
    yp = _predicted_labels(y_pred, len(yt), who)
    if num_classes is None:
        num_classes = int(max(yt.max(initial=-1), yp.max(initial=-1))) + 1
        num_classes = max(num_classes, 1)
    num_classes = operator.index(num_classes)
    for name, v in (("y_true", yt), ("y_pred", yp)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(
                f"{who}: '{name}' labels must lie in [0, {num_classes}), got range [{v.min()}, {v.max()}]"
            )
    cm = np.bincount(yt * num_classes + yp, minlength=num_classes * num_classes)
    cm = cm.reshape(num_classes, num_classes).astype(np.int64)
    if normalize is None:
        return cm
    if normalize not in ("true", "pred", "all"):
        raise ValueError(f"{who}: 'normalize' must be 'true', 'pred', 'all' or None, got {normalize!r}")
    if normalize == "true":
        d = cm.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        d = cm.sum(axis=0, keepdims=True)
    else:
        d = cm.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(d > 0, cm / np.where(d > 0, d, 1), 0.0)
    return out


def _safe_div(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), zero_division)


_AVERAGES = ("binary", "macro", "micro", "weighted", None)


def precision_recall_f1(
    y_true: Any,
    y_pred: Any,
    average: str | None = "binary",
    pos_label: int = 1,
    num_classes: int | None = None,
    beta: float = 1.0,
    zero_division: float = 0.0,
) -> tuple:
    """Precision, recall and F-beta together (see :func:`precision`).

    ``average``:
      * ``'binary'``: the scores of class ``pos_label`` only;
      * ``'micro'``: from the total true positives, false positives and false negatives
        (for single-label data all three equal the accuracy);
      * ``'macro'``: the unweighted mean of the per-class scores;
      * ``'weighted'``: the per-class scores weighted by each class's true count;
      * ``None``: arrays of per-class scores.
    Classes that appear in neither ``y_true`` nor ``y_pred`` are left out of the macro
    mean unless ``num_classes`` is given (then all ``num_classes`` classes count).
    """
    who = "precision_recall_f1"
    if average not in _AVERAGES:
        raise ValueError(f"{who}: 'average' must be one of {_AVERAGES}, got {average!r}")
    if beta < 0:
        raise ValueError(f"{who}: 'beta' must be >= 0, got {beta}")
    yt = _labels(y_true, who)
    yp = _predicted_labels(y_pred, len(yt), who)
    ncls = num_classes
    if average == "binary" and ncls is None:
        ncls = max(int(max(yt.max(initial=-1), yp.max(initial=-1))) + 1, pos_label + 1, 2)
    cm = confusion_matrix(yt, yp, num_classes=ncls)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)  # true counts
    predicted = cm.sum(axis=0).astype(np.float64)
    b2 = beta * beta

    def fbeta(p, r, tp_, pred_, sup_):
        # F = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP): defined unless TP = FN = FP = 0
        den = (1 + b2) * tp_ + b2 * (sup_ - tp_) + (pred_ - tp_)
        return _safe_div((1 + b2) * tp_, den, zero_division)

    if average == "binary":
        if not 0 <= pos_label < len(cm):
            raise ValueError(f"{who}: 'pos_label' {pos_label} is not a class (classes 0..{len(cm) - 1})")
        if len(cm) > 2:
            raise ValueError(
                f"{who}: average='binary' needs 2 classes but the labels have {len(cm)}; "
                f"use average='macro', 'micro' or 'weighted'"
            )
        i = pos_label
        p = _safe_div(tp[i], predicted[i], zero_division)
        r = _safe_div(tp[i], support[i], zero_division)
        return float(p), float(r), float(fbeta(p, r, tp[i], predicted[i], support[i]))
    if average == "micro":
        t, pr, su = tp.sum(), predicted.sum(), support.sum()
        p = _safe_div(t, pr, zero_division)
        r = _safe_div(t, su, zero_division)
        return float(p), float(r), float(fbeta(p, r, t, pr, su))
    p = _safe_div(tp, predicted, zero_division)
    r = _safe_div(tp, support, zero_division)
    f = fbeta(p, r, tp, predicted, support)
    if average is None:
        return p, r, f
    present = (support + predicted) > 0 if num_classes is None else np.ones(len(cm), bool)
    if average == "macro":
        if not present.any():
            return (float(zero_division),) * 3
        return float(p[present].mean()), float(r[present].mean()), float(f[present].mean())
    # weighted
    total = support.sum()
    if total == 0:
        return (float(zero_division),) * 3
    w = support / total
    return float((p * w).sum()), float((r * w).sum()), float((f * w).sum())


def precision(y_true, y_pred, average="binary", pos_label=1, num_classes=None, zero_division=0.0):
    """TP / (TP + FP): of the samples predicted as a class, the fraction that belong to it.
    ``average`` as in :func:`precision_recall_f1`."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, num_classes, 1.0, zero_division)[0]


def recall(y_true, y_pred, average="binary", pos_label=1, num_classes=None, zero_division=0.0):
    """TP / (TP + FN): of the samples of a class, the fraction predicted as it."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, num_classes, 1.0, zero_division)[1]


def f1_score(y_true, y_pred, average="binary", pos_label=1, num_classes=None, zero_division=0.0):
    """The harmonic mean of precision and recall, ``2 P R / (P + R)`` (the course's
    single-number combination of P and R)."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, num_classes, 1.0, zero_division)[2]


def fbeta_score(y_true, y_pred, beta, average="binary", pos_label=1, num_classes=None, zero_division=0.0):
    """``(1 + b^2) P R / (b^2 P + R)``: recall counts ``beta`` times as much as precision."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, num_classes, beta, zero_division)[2]


def harmonic_mean(values: Sequence[float]) -> float:
    """The harmonic mean (F1 of precision and recall is ``harmonic_mean([P, R])``);
    0 if any value is 0."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise ValueError("harmonic_mean: 'values' is empty")
    if (v < 0).any():
        raise ValueError(f"harmonic_mean: 'values' must be >= 0, got {v.tolist()}")
    if (v == 0).any():
        return 0.0
    return float(len(v) / np.sum(1.0 / v))


def weighted_sum(metrics: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Combine several metrics into one number, ``sum(weights[k] * metrics[k])`` (the
    course's "accuracy - 0.5 * running_time" style of single-number metric)."""
    missing = [k for k in weights if k not in metrics]
    if missing:
        raise KeyError(f"weighted_sum: metrics {missing} are weighted but missing from {sorted(metrics)}")
    return float(sum(float(w) * float(metrics[k]) for k, w in weights.items()))


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "==": lambda a, b: a == b,
}


def _parse_constraint(name: str, spec, who: str) -> Callable[[float], bool]:
    if callable(spec):
        return spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and spec[0] in _OPS:
        op, bound = spec
        return lambda v, op=op, bound=bound: _OPS[op](v, bound)
    if isinstance(spec, str):
        for op in ("<=", ">=", "==", "<", ">"):
            if spec.strip().startswith(op):
                bound = float(spec.strip()[len(op):])
                return lambda v, op=op, bound=bound: _OPS[op](v, bound)
    raise ValueError(
        f"{who}: satisficing constraint for {name!r} must be like ('<=', 100), '<= 100' or a "
        f"callable, got {spec!r}"
    )


def select_model(
    candidates: Mapping[str, Mapping[str, float]],
    optimizing: str,
    satisficing: Mapping[str, Any] | None = None,
    mode: str = "max",
    return_all: bool = False,
):
    """Pick a model with one optimizing metric and N-1 satisficing metrics (course: e.g.
    maximise accuracy subject to running time <= 100 ms).

    Args:
        candidates: ``{name: {metric: value, ...}}``.
        optimizing: the metric to maximise (``mode='max'``) or minimise (``mode='min'``).
        satisficing: ``{metric: constraint}`` thresholds each kept model must meet, a
            constraint being ``('<=', 100)``, the string ``'<= 100'`` or a callable
            ``value -> bool``.
        return_all: also return the names that met every constraint.

    Returns the best feasible name (ties go to the first listed), or
    ``(best, feasible_names)`` with ``return_all``. Raises ``ValueError`` when no
    candidate meets the constraints (listing why each failed) and ``KeyError`` when a
    candidate lacks a metric.
    """
    who = "select_model"
    if mode not in ("max", "min"):
        raise ValueError(f"{who}: 'mode' must be 'max' or 'min', got {mode!r}")
    if not candidates:
        raise ValueError(f"{who}: 'candidates' is empty")
    checks = {k: _parse_constraint(k, v, who) for k, v in (satisficing or {}).items()}
    feasible, reasons = [], []
    for name, m in candidates.items():
        for metric in [optimizing, *checks]:
            if metric not in m:
                raise KeyError(f"{who}: candidate {name!r} has no metric {metric!r} (has {sorted(m)})")
        failed = [k for k, ok in checks.items() if not ok(m[k])]
        v = float(m[optimizing])
        if math.isnan(v):
            failed.append(f"{optimizing} is nan")
        if failed:
            reasons.append(f"{name!r} fails {', '.join(f'{k}={m[k]!r}' if k in m else k for k in failed)}")
        else:
            feasible.append(name)
    if not feasible:
        raise ValueError(f"{who}: no candidate meets the satisficing constraints: " + "; ".join(reasons))
    sign = 1.0 if mode == "max" else -1.0
    best = feasible[0]
    for name in feasible[1:]:
        if sign * float(candidates[name][optimizing]) > sign * float(candidates[best][optimizing]):
            best = name
    return (best, feasible) if return_all else best
