"""Callbacks: hooks called by :meth:`Model.fit` around epochs and batches (Keras-shaped).

A callback sees the :class:`~oxinet.train.Model` as ``self.model`` and the logs dict
(``loss``, metrics, ``val_*``, ``lr``); setting ``self.model.stop_training = True``
ends training after the current batch/epoch.
"""

from __future__ import annotations

import copy
import csv
import math
import os

import numpy as np


class Callback:
    """Base class: override the hooks you need."""

    def __init__(self):
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: 'mode' must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    return "max" if any(s in name for s in ("acc", "auc", "f1", "precision", "recall", "map", "iou")) else "min"


class _Monitor:
    """Tracks the best value of one logged quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float, who: str):
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, who)
        self.min_delta = abs(float(min_delta))
        self.who = who
        self.best = math.inf if self.mode == "min" else -math.inf

    def current(self, logs: dict) -> float | None:
        value = logs.get(self.monitor)
        if value is None:
            return None
        return float(value)

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def missing(self, logs: dict) -> KeyError:
        return KeyError(
            f"{self.who}: monitored quantity {self.monitor!r} is not logged; available: {sorted(logs)}"
        )


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs. With ``restore_best_weights`` the module gets back the weights of the best
    epoch when training ends (whether it stopped early or ran out of epochs).

    ``stopped_epoch`` is the epoch after which training stopped (None if it did not).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False):
        super().__init__()
        if patience < 0:
            raise ValueError(f"EarlyStopping: 'patience' must be >= 0, got {patience}")
        self._mon = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.patience = int(patience)
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, logs):
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self.best_weights = None
        self._mon.best = math.inf if self._mon.mode == "min" else -math.inf
        if self.baseline is not None:
            self._mon.best = float(self.baseline)

    def on_epoch_end(self, epoch, logs):
        value = self._mon.current(logs)
        if value is None:
            raise self._mon.missing(logs)
        if self._mon.improved(value):
            self._mon.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.model.module.state_dict())
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.module.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after every epoch, or only when ``monitor`` improved
    (``save_best_only``). ``filepath`` may hold format fields such as
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"`` (``epoch`` counts from 1).

    ``save_weights_only=True`` writes the module's weights (safetensors, or .npz by
    extension); otherwise a full checkpoint with optimizer state and epoch that
    :meth:`Model.fit` can resume from (``oxinet.load_checkpoint``). Files are written to
    a temporary name and renamed, so a crash mid-save leaves the previous file intact.
    """

    def __init__(self, filepath, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", save_weights_only: bool = False, verbose: int = 0):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.verbose = verbose
        self._mon = _Monitor(monitor, mode, 0.0, "ModelCheckpoint")
        self.last_saved: str | None = None

    def on_train_begin(self, logs):
        self._mon.best = math.inf if self._mon.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = self._mon.current(logs)
            if value is None:
                raise self._mon.missing(logs)
            if not self._mon.improved(value):
                return
            self._mon.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path, weights_only=self.save_weights_only, epoch=epoch)
        self.last_saved = path
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")


class LearningRateScheduler(Callback):
    """Change the learning rate between epochs.

    ``schedule`` is an ``oxinet.optim.lr_scheduler`` scheduler (stepped after every epoch;
    ``ReduceLROnPlateau`` is stepped with the logged ``monitor`` value), or a function
    ``schedule(epoch, lr) -> new_lr`` applied to every parameter group before each epoch
    (Keras' form). The current rate is logged as ``lr``.
    """

    def __init__(self, schedule, monitor: str = "val_loss", verbose: int = 0):
        super().__init__()
        self.schedule = schedule
        self.monitor = monitor
        self.verbose = verbose

    def _is_scheduler(self) -> bool:
        from oxinet.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

        return isinstance(self.schedule, (LRScheduler, ReduceLROnPlateau))

    def on_epoch_begin(self, epoch, logs):
        if not self._is_scheduler():
            if not callable(self.schedule):
                raise TypeError("LearningRateScheduler: 'schedule' must be a scheduler or a function (epoch, lr) -> lr")
            for group in self.model.optimizer.param_groups:
                group["lr"] = float(self.schedule(epoch, group["lr"]))
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {self.model.optimizer.param_groups[0]['lr']:.3g}")

    def on_epoch_end(self, epoch, logs):
        logs["lr"] = self.model.optimizer.param_groups[0]["lr"]
        if self._is_scheduler():
            from oxinet.optim.lr_scheduler import ReduceLROnPlateau

            if isinstance(self.schedule, ReduceLROnPlateau):
                if self.monitor not in logs:
                    raise KeyError(f"LearningRateScheduler: {self.monitor!r} is not logged; available: {sorted(logs)}")
                self.schedule.step(logs[self.monitor])
            else:
                self.schedule.step()


class CSVLogger(Callback):
    """Append one row per epoch (epoch, then every logged quantity) to a CSV file."""

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._keys: list[str] | None = None

    def on_train_begin(self, logs):
        self._keys = None
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = f.readline().strip()
            if header:
                self._keys = header.split(self.separator)[1:]
        elif not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs):
        new_file = not os.path.exists(self.filename)
        if self._keys is None:
            self._keys = sorted(logs)
        with open(self.filename, "a", newline="") as f:
            w = csv.writer(f, delimiter=self.separator)
            if new_file:
                w.writerow(["epoch"] + self._keys)
            w.writerow([epoch] + [logs.get(k, "") for k in self._keys])


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_batch_end(self, batch, logs):
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"TerminateOnNaN: batch {batch} has loss {loss}; stopping")
            self.model.stop_training = True
