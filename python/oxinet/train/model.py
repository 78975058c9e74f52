"""``Model``: Keras' compile/fit/evaluate/predict around an ``oxinet.nn.Module``."""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Sequence

import numpy as np

import oxinet
from oxinet import nn, optim
from oxinet.data import DataLoader
from oxinet.grad_mode import no_grad
from oxinet.tensor import Tensor, get_default_dtype
from oxinet.train.callbacks import Callback
from oxinet.train.history import History
from oxinet.train.progress import EpochProgress

_LOSSES: dict[str, Callable[[], Any]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "categorical_crossentropy": nn.CrossEntropyLoss,
    "sparse_categorical_crossentropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "mse": nn.MSELoss,
    "mean_squared_error": nn.MSELoss,
    "mae": nn.L1Loss,
    "l1": nn.L1Loss,
    "huber": nn.HuberLoss,
    "bce": nn.BCELoss,
    "binary_crossentropy": nn.BCELoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "hinge": nn.MultiMarginLoss,
}

_OPTIMIZERS: dict[str, Callable[..., Any]] = {
    "sgd": optim.SGD,
    "momentum": lambda p, lr=1e-2: optim.SGD(p, lr=lr, momentum=0.9),
    "adam": optim.Adam,
    "adamw": optim.AdamW,
    "rmsprop": optim.RMSprop,
    "adagrad": optim.Adagrad,
}

_DEFAULT_LR = {"sgd": 1e-2, "momentum": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adagrad": 1e-2}


class _Metric:
    """A named batch metric whose epoch value is the sample-weighted mean of batch values."""

    def __init__(self, name: str, fn: Callable[[np.ndarray, np.ndarray], float]):
        self.name = name
        self.fn = fn


def _class_scores(y_true: np.ndarray, y_pred: np.ndarray):
    """Flatten (N, C, d1, ...) scores with (N, d1, ...) labels to (M, C) and (M,)."""
    if y_pred.ndim > 2 and y_true.ndim == y_pred.ndim - 1:
        c = y_pred.shape[1]
        return y_true.reshape(-1), np.moveaxis(y_pred, 1, -1).reshape(-1, c)
    return y_true, y_pred


def _accuracy_metric(threshold: float) -> Callable:
    def accuracy(y_true, y_pred):
        yt, yp = _class_scores(np.asarray(y_true), np.asarray(y_pred))
        if yp.shape == yt.shape and yp.ndim >= 1 and np.issubdtype(yp.dtype, np.floating):
            return float(np.mean((yp > threshold) == (yt > 0.5)))  # binary, any shape
        return oxinet.metrics.accuracy(yt.reshape(-1), yp, threshold)

    return accuracy


def _top_k_metric(k: int) -> Callable:
    def top_k(y_true, y_pred):
        yt, yp = _class_scores(np.asarray(y_true), np.asarray(y_pred))
        return oxinet.metrics.top_k_accuracy(yt, yp, k)

    return top_k


def _as_input(x):
    """NumPy batch -> Tensor: floats in the default dtype (float32 unless changed),
    integers (token ids, class labels) as they are."""
    if isinstance(x, Tensor):
        return x
    a = np.asarray(x)
    if np.issubdtype(a.dtype, np.floating) and a.dtype != get_default_dtype():
        a = a.astype(get_default_dtype())
    return oxinet.as_tensor(a)


def _batch_size(x) -> int:
    first = x[0] if isinstance(x, (tuple, list)) else x
    return int(first.shape[0])


class Model:
    """Keras-style training of an ``oxinet.nn.Module``::

        model = Model(net).compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=64, epochs=10, validation_split=0.1)
        model.evaluate(x_test, y_test); probs = model.predict(x_test)

    ``x`` may be an array, a tuple of arrays (several module inputs) or a
    :class:`~oxinet.data.DataLoader` yielding ``(x, y)`` batches. Float inputs are
    converted to the default dtype (float32); integer inputs are passed unchanged.
    """

    def __init__(self, module: nn.Module):
        if not isinstance(module, nn.Module):
            raise TypeError(f"Model: 'module' must be an oxinet.nn.Module, got {type(module).__name__}")
        self.module = module
        self.optimizer = None
        self.loss_fn = None
        self.metrics: list[_Metric] = []
        self.stop_training = False
        self.history: History | None = None
        self.epoch = 0  # epochs completed over all fit() calls
        self.clip_grad_norm: float | None = None

    # ---- configuration ---------------------------------------------------------------

    def compile(self, optimizer: Any = "adam", loss: Any = "cross_entropy",
                metrics: Sequence[Any] | None = None, lr: float | None = None,
                clip_grad_norm: float | None = None) -> "Model":
        """Choose the optimizer (an ``oxinet.optim`` optimizer or a name: 'sgd', 'momentum',
        'adam', 'adamw', 'rmsprop', 'adagrad', with ``lr``), the loss (an ``nn`` loss module,
        a callable ``(output, target) -> Tensor`` or a name such as 'cross_entropy', 'mse',
        'bce_with_logits') and metrics ('accuracy', 'top5_accuracy', or callables
        ``(y_true, y_pred) -> float`` on NumPy arrays). Returns the model."""
        if isinstance(optimizer, str):
            key = optimizer.lower()
            if key not in _OPTIMIZERS:
                raise ValueError(f"compile: unknown optimizer {optimizer!r}; choose from {sorted(_OPTIMIZERS)}")
            optimizer = _OPTIMIZERS[key](list(self.module.parameters()), lr=_DEFAULT_LR[key] if lr is None else lr)
        elif not hasattr(optimizer, "step") or not hasattr(optimizer, "zero_grad"):
            raise TypeError(f"compile: 'optimizer' must be an oxinet optimizer or a name, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if isinstance(loss, str):
            key = loss.lower()
            if key not in _LOSSES:
                raise ValueError(f"compile: unknown loss {loss!r}; choose from {sorted(_LOSSES)}")
            loss = _LOSSES[key]()
        elif not callable(loss):
            raise TypeError(f"compile: 'loss' must be a loss module, a callable or a name, got {type(loss).__name__}")
        self.loss_fn = loss
        threshold = 0.0 if isinstance(loss, nn.BCEWithLogitsLoss) else 0.5
        self.metrics = [self._metric(m, threshold) for m in (metrics or [])]
        if clip_grad_norm is not None and clip_grad_norm <= 0:
            raise ValueError(f"compile: 'clip_grad_norm' must be > 0, got {clip_grad_norm}")
        self.clip_grad_norm = clip_grad_norm
        return self

    @staticmethod
    def _metric(m, threshold: float) -> _Metric:
        if callable(m):
            return _Metric(getattr(m, "__name__", "metric"), m)
        if not isinstance(m, str):
            raise TypeError(f"compile: a metric must be a name or a callable, got {type(m).__name__}")
        key = m.lower()
        if key in ("accuracy", "acc"):
            return _Metric("accuracy", _accuracy_metric(threshold))
        if key.startswith("top") and key.endswith("_accuracy") and key[3:-9].isdigit():
            k = int(key[3:-9])
            return _Metric(key, _top_k_metric(k))
        raise ValueError(f"compile: unknown metric {m!r}; use 'accuracy', 'topK_accuracy' or a callable")

    def _require_compiled(self, who: str) -> None:
        if self.optimizer is None or self.loss_fn is None:
            raise RuntimeError(f"Model.{who}: call compile(optimizer, loss, metrics) first")

    # ---- steps -----------------------------------------------------------------------------

    def _forward(self, x):
        if isinstance(x, (tuple, list)):
            return self.module(*[_as_input(xi) for xi in x])
        return self.module(_as_input(x))

    def _loss(self, out, y):
        target = y if isinstance(y, Tensor) else oxinet.as_tensor(np.asarray(y))
        if np.issubdtype(target.dtype, np.floating) and target.dtype != out.dtype:
            target = oxinet.as_tensor(np.asarray(y).astype(out.dtype))
        return self.loss_fn(out, target)

    def _batch_metrics(self, y, out_np) -> dict:
        y_np = y.numpy() if isinstance(y, Tensor) else np.asarray(y)
        return {m.name: float(m.fn(y_np, out_np)) for m in self.metrics}

    def train_on_batch(self, x, y) -> dict:
        """One optimisation step on one batch; returns its ``loss`` and metrics."""
        self._require_compiled("train_on_batch")
        self.module.train()
        out = self._forward(x)
        loss = self._loss(out, y)
        self.optimizer.zero_grad()
        loss.backward()
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        logs = {"loss": float(loss.item())}
        logs.update(self._batch_metrics(y, out.numpy()))
        return logs

    def test_on_batch(self, x, y) -> dict:
        """Loss and metrics of one batch in eval mode, without updating anything."""
        self._require_compiled("test_on_batch")
        self.module.eval()
        with no_grad():
            out = self._forward(x)
            loss = self._loss(out, y)
        logs = {"loss": float(loss.item())}
        logs.update(self._batch_metrics(y, out.numpy()))
        return logs

    # ---- loops -------------------------------------------------------------------------------

    def _loader(self, x, y, batch_size: int, shuffle: bool, seed, who: str) -> DataLoader:
        if isinstance(x, DataLoader):
            if y is not None:
                raise ValueError(f"{who}: pass 'y' only with arrays; the DataLoader already yields (x, y)")
            return x
        if x is None or y is None:
            raise ValueError(f"{who}: need 'x' and 'y' arrays (or a DataLoader as 'x')")
        xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        return DataLoader(xs + (y,), batch_size=batch_size, shuffle=shuffle, seed=seed)

    @staticmethod
    def _split_batch(batch, n_inputs: int | None):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("Model: a DataLoader for fit/evaluate must yield (x, y) tuples")
        *xs, y = batch
        return (xs[0] if len(xs) == 1 else tuple(xs)), y

    def _run_eval(self, loader: DataLoader) -> dict:
        totals: dict[str, float] = {}
        count = 0
        for batch in loader:
            xb, yb = self._split_batch(batch, None)
            logs = self.test_on_batch(xb, yb)
            n = _batch_size(xb)
            count += n
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v * n
        return {k: v / count for k, v in totals.items()}

    def fit(self, x=None, y=None, batch_size: int = 32, epochs: int = 1, validation_data=None,
            validation_split: float = 0.0, shuffle: bool = True, callbacks: Sequence[Callback] | None = None,
            verbose: int = 1, initial_epoch: int | None = None, seed=None) -> History:
        """Train for ``epochs`` epochs; returns the :class:`History` (also ``model.history``).

        ``validation_split`` holds out the *last* fraction of the arrays (before shuffling,
        as Keras does); ``validation_data`` is ``(x_val, y_val)`` or a DataLoader. Epoch
        logs hold ``loss``, each metric, and ``val_``-prefixed versions when validating.
        ``initial_epoch`` defaults to the epochs already completed (so a second call, or a
        restored checkpoint, continues the count). ``seed`` seeds the shuffling (default:
        oxinet's shared generator, see ``oxinet.manual_seed``).
        """
        self._require_compiled("fit")
        epochs = operator.index(epochs)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: 'validation_split' must be in [0, 1), got {validation_split}")
        if validation_split and not isinstance(x, DataLoader):
            xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
            n = len(np.asarray(y))
            n_val = int(math.floor(n * validation_split))
            if n_val == 0 or n_val == n:
                raise ValueError(f"fit: validation_split={validation_split} of {n} samples leaves an empty set")
            cut = n - n_val
            val_x = tuple(a[cut:] for a in xs)
            validation_data = (val_x[0] if len(val_x) == 1 else val_x, y[cut:])
            x = tuple(a[:cut] for a in xs) if len(xs) > 1 else xs[0][:cut]
            y = y[:cut]
        elif validation_split:
            raise ValueError("fit: 'validation_split' needs arrays; pass validation_data with a DataLoader")
        train_loader = self._loader(x, y, batch_size, shuffle, seed, "fit")
        val_loader = None
        if validation_data is not None:
            if isinstance(validation_data, DataLoader):
                val_loader = validation_data
            else:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise ValueError("fit: 'validation_data' must be (x_val, y_val) or a DataLoader")
                val_loader = self._loader(validation_data[0], validation_data[1], batch_size, False, None, "fit")

        history = History()
        cbs = list(callbacks or []) + [history]  # last: it records what the others added (lr)
        for cb in cbs:
            cb.set_model(self)
        self.history = history
        self.stop_training = False
        start = self.epoch if initial_epoch is None else operator.index(initial_epoch)
        for cb in cbs:
            cb.on_train_begin({})
        for epoch in range(start, start + epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch, {})
            progress = EpochProgress(epoch, start + epochs, len(train_loader), verbose)
            totals: dict[str, float] = {}
            count = 0
            for i, batch in enumerate(train_loader):
                for cb in cbs:
                    cb.on_batch_begin(i, {})
                xb, yb = self._split_batch(batch, None)
                logs = self.train_on_batch(xb, yb)
                n = _batch_size(xb)
                count += n
                for k, v in logs.items():
                    totals[k] = totals.get(k, 0.0) + v * n
                progress.update(n, {k: v / count for k, v in totals.items()})
                for cb in cbs:
                    cb.on_batch_end(i, logs)
                if self.stop_training:
                    break
            epoch_logs = {k: v / max(count, 1) for k, v in totals.items()}
            if val_loader is not None:
                epoch_logs.update({f"val_{k}": v for k, v in self._run_eval(val_loader).items()})
            self.epoch = epoch + 1
            for cb in cbs:
                cb.on_epoch_end(epoch, epoch_logs)
            progress.close(epoch_logs)
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end({})
        return history

    def evaluate(self, x=None, y=None, batch_size: int = 256, verbose: int = 0) -> dict:
        """Loss and metrics over a whole set (eval mode, no gradients): a dict."""
        self._require_compiled("evaluate")
        logs = self._run_eval(self._loader(x, y, batch_size, False, None, "evaluate"))
        if verbose:
            print("evaluate - " + " - ".join(f"{k}: {v:.4g}" for k, v in logs.items()))
        return logs

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """The module's outputs for ``x`` (array or tuple of arrays), computed in eval mode
        in batches and concatenated: a NumPy array."""
        self.module.eval()
        xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        loader = DataLoader(xs, batch_size=batch_size, shuffle=False)
        outs = []
        with no_grad():
            for batch in loader:
                xb = batch if len(xs) > 1 else (batch[0] if isinstance(batch, tuple) else batch)
                outs.append(self._forward(xb).numpy())
        return np.concatenate(outs, axis=0)

    # ---- saving --------------------------------------------------------------------------

    def save(self, path, weights_only: bool = False, epoch: int | None = None) -> None:
        """Save the module's weights (``weights_only``; safetensors or .npz by extension)
        or a full checkpoint (weights, optimizer state, epoch) — atomically."""
        if weights_only:
            oxinet.save(self.module.state_dict(), path)
        else:
            oxinet.save_checkpoint(path, self.module, self.optimizer,
                                   epoch=self.epoch - 1 if epoch is None else epoch)

    def load(self, path, weights_only: bool = False) -> dict | None:
        """Load what :meth:`save` wrote; a checkpoint also restores the optimizer state and
        the epoch count, so the next :meth:`fit` resumes exactly."""
        if weights_only:
            self.module.load_state_dict(oxinet.load(path))
            return None
        ck = oxinet.load_checkpoint(path, model=self.module, optimizer=self.optimizer)
        if ck.get("epoch") is not None:
            self.epoch = int(ck["epoch"]) + 1
        return ck
