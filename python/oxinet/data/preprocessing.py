"""Feature standardisation (fit on train, apply to the rest) and one-hot encoding."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np


def _float_of(x: np.ndarray) -> np.dtype:
    return x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _norm_axis(axis, ndim: int, who: str) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{who}: 'axis' {a} is out of range for an array of rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{who}: 'axis' {axis} repeats an axis")
    return tuple(sorted(out))


class Standardizer:
    """Standardise features to zero mean and unit variance: ``(x - mean) / std``.

    ``fit`` on the training set only, then ``transform`` the training, dev and test sets
    with the same statistics (the course: use the same mu and sigma for the test set).

    Args:
        axis: the axes reduced over when fitting; statistics keep the other axes. ``0``
            (default) gives per-feature statistics for ``(N, D)`` data; ``(0, 2, 3)`` gives
            per-channel statistics for NCHW images.
        eps: a feature whose standard deviation is ``<= eps`` (e.g. constant pixels) is only
            centred: its scale is set to 1, so no division by zero ever happens.

    Attributes after ``fit``: ``mean_`` and ``scale_`` (float64, shaped to broadcast
    against the input, i.e. with size-1 reduced axes), ``n_samples_seen_``.
    Outputs are float32 for float32/integer inputs, float64 for float64 inputs.
    """

    def __init__(self, axis=0, eps: float = 1e-8):
        self.axis = axis
        self.eps = float(eps)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.n_samples_seen_ = 0

    def fit(self, x: Any) -> "Standardizer":
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"Standardizer.fit: 'x' must be numeric, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError("Standardizer.fit: 'x' must have at least one axis, got a scalar")
        axes = _norm_axis(self.axis, x.ndim, "Standardizer.fit")
        count = int(np.prod([x.shape[a] for a in axes]))
        if count == 0:
            raise ValueError(f"Standardizer.fit: 'x' has no samples along axis {self.axis} (shape {x.shape})")
        xd = x.astype(np.float64, copy=False)
        self.mean_ = xd.mean(axis=axes, keepdims=True)
        std = np.sqrt(((xd - self.mean_) ** 2).mean(axis=axes, keepdims=True))
        self.scale_ = np.where(std > self.eps, std, 1.0)
        self._axes = axes
        self._shape = x.shape
        self.n_samples_seen_ = count
        return self

    def _check(self, x: np.ndarray, who: str) -> None:
        if self.mean_ is None:
            raise RuntimeError(f"Standardizer.{who}: call fit(x_train) first")
        if x.ndim != self.mean_.ndim:
            raise ValueError(
                f"Standardizer.{who}: 'x' has shape {x.shape} but the statistics were fitted "
                f"on shape {self._shape} (rank {self.mean_.ndim})"
            )
        for a in range(x.ndim):
            if a not in self._axes and x.shape[a] != self.mean_.shape[a]:
                raise ValueError(
                    f"Standardizer.{who}: 'x' has shape {x.shape} but the statistics were "
                    f"fitted on shape {self._shape} (axis {a} must have size {self.mean_.shape[a]})"
                )

    def transform(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        self._check(x, "transform")
        dt = _float_of(x)
        return ((x - self.mean_.astype(dt)) / self.scale_.astype(dt)).astype(dt, copy=False)

    def fit_transform(self, x: Any) -> np.ndarray:
        return self.fit(x).transform(x)

    def inverse_transform(self, z: Any) -> np.ndarray:
        z = np.asarray(z)
        self._check(z, "inverse_transform")
        dt = _float_of(z)
        return (z * self.scale_.astype(dt) + self.mean_.astype(dt)).astype(dt, copy=False)

    def state_dict(self) -> dict:
        """The fitted statistics as a dict of arrays (saveable with ``oxinet.save``)."""
        if self.mean_ is None:
            raise RuntimeError("Standardizer.state_dict: call fit(x_train) first")
        return {
            "mean": self.mean_.copy(),
            "scale": self.scale_.copy(),
            "axes": np.asarray(self._axes, dtype=np.int64),
            "n_samples_seen": np.asarray(self.n_samples_seen_, dtype=np.int64),
        }

    def load_state_dict(self, state: dict) -> "Standardizer":
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale"], dtype=np.float64)
        self._axes = tuple(int(a) for a in np.asarray(state["axes"]).reshape(-1))
        self._shape = self.mean_.shape
        self.n_samples_seen_ = int(state["n_samples_seen"])
        return self

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean_ is None else f"fitted on {self.n_samples_seen_} samples"
        return f"Standardizer(axis={self.axis}, {fitted})"


def one_hot(labels: Any, num_classes: int | None = None, dtype=np.float32) -> np.ndarray:
    """One-hot encode integer class labels: shape ``labels.shape + (num_classes,)``.

    ``num_classes`` defaults to ``labels.max() + 1`` (as ``torch.nn.functional.one_hot``
    with ``num_classes=-1``; ``-1`` is accepted too). The result is float32 by default,
    ready for a loss (``torch`` returns int64; pass ``dtype=np.int64`` for that).
    """
    y = np.asarray(labels)
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise TypeError(f"one_hot: 'labels' must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if num_classes is None or num_classes == -1:
        if y.size == 0:
            raise ValueError("one_hot: 'num_classes' is required for empty 'labels'")
        num_classes = int(y.max()) + 1
    num_classes = operator.index(num_classes)
    if num_classes < 1:
        raise ValueError(f"one_hot: 'num_classes' must be >= 1, got {num_classes}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"one_hot: 'labels' must lie in [0, {num_classes}) for num_classes={num_classes}, "
            f"got values in [{y.min()}, {y.max()}]"
        )
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
