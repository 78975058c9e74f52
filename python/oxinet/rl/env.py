"""The environment interface (agent-environment loop of INVENTORY S74).

An environment has

* ``action_space_n``: number of discrete actions (actions are ints ``0..n-1``);
* ``observation_shape``: shape of one observation (``()`` for a discrete state index);
* ``reset(seed=None) -> obs``: start an episode; an int ``seed`` re-seeds the
  environment's generator (so the episode and everything after it is repeatable),
  ``None`` continues the current stream;
* ``step(action) -> (obs, reward, terminated, truncated, info)``: ``terminated`` means a
  terminal state of the task (no bootstrapping from it), ``truncated`` a time limit cut
  the episode (the state is not terminal). Calling ``step`` after either without
  ``reset`` raises ``RuntimeError``.

This is the same split as Gymnasium's API, so agents written against it port directly.
"""

from __future__ import annotations

import numpy as np


class Env:
    """Base class: subclasses implement ``_reset(rng)`` and ``_step(action)``."""

    action_space_n: int = 0
    observation_shape: tuple = ()

    def __init__(self, seed: int | None = None):
        self._rng = np.random.default_rng(seed)
        self._needs_reset = True

    @property
    def np_random(self) -> np.random.Generator:
        return self._rng

    def reset(self, seed: int | None = None):
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise TypeError(f"{type(self).__name__}.reset: 'seed' must be an int or None, "
                                f"got {type(seed).__name__}")
            self._rng = np.random.default_rng(int(seed))
        self._needs_reset = False
        return self._reset()

    def step(self, action):
        name = type(self).__name__
        if self._needs_reset:
            raise RuntimeError(f"{name}.step: the episode is over (or never started); call reset()")
        a = self._check_action(action)
        obs, reward, terminated, truncated, info = self._step(a)
        if terminated or truncated:
            self._needs_reset = True
        return obs, float(reward), bool(terminated), bool(truncated), info

    def _check_action(self, action) -> int:
        name = type(self).__name__
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            if isinstance(action, np.ndarray) and action.ndim == 0 and np.issubdtype(action.dtype, np.integer):
                action = int(action)
            else:
                raise TypeError(f"{name}.step: 'action' must be an int, got {type(action).__name__}")
        if not 0 <= action < self.action_space_n:
            raise ValueError(f"{name}.step: 'action' must be in [0, {self.action_space_n}), got {action}")
        return int(action)

    def _reset(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _step(self, action: int):  # pragma: no cover - abstract
        raise NotImplementedError
