"""Experience replay: a fixed-capacity ring buffer of transitions stored as arrays.

Each field is one preallocated array (``obs`` and ``next_obs`` of shape
(capacity, *obs_shape)), so adding is a few row writes and sampling is fancy indexing.
When full, the oldest transition is overwritten. ``sample`` draws uniformly from the
stored transitions with a seeded generator (with replacement by default, as DQN's
uniform replay does; ``replace=False`` gives distinct transitions).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    indices: np.ndarray


class ReplayBuffer:
    """Ring buffer of (obs, action, reward, next_obs, terminated).

    capacity: max transitions; obs_shape: shape of one observation; obs_dtype: float32 by
    default (int64 for discrete states); seed: the sampling generator's seed.
    """

    def __init__(self, capacity: int, obs_shape=(), *, obs_dtype=np.float32, seed: int | None = None):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"ReplayBuffer: 'capacity' must be an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"ReplayBuffer: 'capacity' must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.obs = np.zeros((self.capacity,) + self.obs_shape, obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros(self.capacity, np.int64)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.terminated = np.zeros(self.capacity, bool)
        self._pos = 0
        self._size = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._size

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Store one transition."""
        self.add_batch(np.asarray(obs)[None], np.asarray([action]), np.asarray([reward]),
                       np.asarray(next_obs)[None], np.asarray([terminated]))

    def add_batch(self, obs, actions, rewards, next_obs, terminated) -> None:
        """Store N transitions at once (arrays with a leading dimension N)."""
        obs = np.asarray(obs)
        n = obs.shape[0] if obs.ndim else 0
        want = (n,) + self.obs_shape
        for name, v in (("obs", obs), ("next_obs", np.asarray(next_obs))):
            if v.shape != want:
                raise ValueError(f"ReplayBuffer.add: '{name}' has shape {v.shape[1:]} per transition, "
                                 f"expected {self.obs_shape}")
        for name, v in (("actions", actions), ("rewards", rewards), ("terminated", terminated)):
            if np.shape(v) != (n,):
                raise ValueError(f"ReplayBuffer.add: '{name}' must have shape ({n},), got {np.shape(v)}")
        if n > self.capacity:  # only the newest `capacity` survive
            sl = slice(n - self.capacity, n)
            obs, next_obs = obs[sl], np.asarray(next_obs)[sl]
            actions, rewards, terminated = (np.asarray(v)[sl] for v in (actions, rewards, terminated))
            n = self.capacity
        idx = (self._pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self._pos = int((self._pos + n) % self.capacity)
        self._size = min(self.capacity, self._size + n)

    def sample(self, batch_size: int, *, replace: bool = True) -> Batch:
        """A uniform random batch of stored transitions (copies)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"ReplayBuffer.sample: 'batch_size' must be a positive int, got {batch_size!r}")
        if self._size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        if not replace and batch_size > self._size:
            raise ValueError(f"ReplayBuffer.sample: 'batch_size' = {batch_size} exceeds the "
                             f"{self._size} stored transitions (replace=False)")
        if replace:
            idx = self._rng.integers(0, self._size, batch_size)
        else:
            idx = self._rng.choice(self._size, batch_size, replace=False)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.terminated[idx], idx)
