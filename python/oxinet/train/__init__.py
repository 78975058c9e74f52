"""Keras-shaped training on top of oxinet.nn: ``Model(module).compile(...).fit(...)``,
callbacks, progress output and the per-epoch :class:`History`."""

from oxinet.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from oxinet.train.history import History
from oxinet.train.model import Model

__all__ = [
    "Model", "History", "Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
    "CSVLogger", "TerminateOnNaN", "LambdaCallback",
]
