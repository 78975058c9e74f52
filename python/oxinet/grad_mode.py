"""Switching gradient recording on and off: ``no_grad``, ``enable_grad``, ``set_grad_enabled``.

The switch is per thread, like PyTorch's (a data-loading thread that runs under
``no_grad`` does not stop the training thread from recording), and costs every op one
attribute load. Each of the three objects works as a context manager and as a function
decorator, like their PyTorch namesakes.
"""

from __future__ import annotations

import functools
import threading


class _State(threading.local):
    enabled = True  # the class attribute is every new thread's starting value


# Read by every Tensor op as ``state.enabled``. Change it only through the helpers below.
state = _State()


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are being recorded (this thread)."""
    return state.enabled


class _GradModeSwitch:
    """Base of the context managers: sets the flag on entry, restores it on exit."""

    _mode = True

    def __enter__(self):
        self._prev = state.enabled
        state.enabled = self._mode
        return self

    def __exit__(self, *exc):
        state.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeSwitch):
    """Context manager and decorator that stops recording operations for autograd.

    Results computed inside have ``requires_grad=False``; use it for evaluation and for
    in-place parameter updates::

        with oxinet.no_grad():
            y = model(x)

        @oxinet.no_grad()
        def evaluate(model, x): ...
    """

    _mode = False


class enable_grad(_GradModeSwitch):
    """Context manager and decorator that turns recording back on inside ``no_grad``."""

    _mode = True


class set_grad_enabled(_GradModeSwitch):
    """``set_grad_enabled(mode)``: set recording on or off; as a call it takes effect at
    once, as a context manager it is undone on exit."""

    def __init__(self, mode: bool):
        self._prev = state.enabled
        self._mode = bool(mode)
        state.enabled = self._mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        state.enabled = self._prev
        return False

    def __call__(self, fn):
        mode = self._mode
        state.enabled = self._prev  # used as a decorator: do not leave the flag changed

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper
