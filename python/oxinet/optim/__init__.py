"""``oxinet.optim``: optimizers and learning-rate schedules (``torch.optim``-shaped)."""

from oxinet.optim.optimizer import Optimizer
from oxinet.optim.sgd import SGD
from oxinet.optim.adaptive import Adagrad, Adam, AdamW, RMSprop
from oxinet.optim.lbfgs import LBFGS
from oxinet.optim.second_order import LevenbergMarquardt, Newton
from oxinet.optim import lr_scheduler

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "LBFGS", "Newton", "LevenbergMarquardt",
           "lr_scheduler"]
