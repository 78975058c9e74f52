"""Cart-pole balancing with the dynamics of Barto, Sutton & Anderson (1983).

State ``(x, x_dot, theta, theta_dot)``: cart position (m), velocity, pole angle from the
vertical (rad), angular velocity. Action 0 pushes left, 1 pushes right with force
``F = force_mag``. With total mass ``M = m_cart + m_pole`` and pole half-length ``l``::

    tmp       = (F + m_pole l theta_dot^2 sin theta) / M
    theta_acc = (g sin theta - cos theta tmp) / (l (4/3 - m_pole cos^2 theta / M))
    x_acc     = tmp - m_pole l theta_acc cos theta / M

followed by one explicit Euler step of ``tau`` seconds (position first, with the old
velocity): ``x += tau x_dot; x_dot += tau x_acc; theta += tau theta_dot;
theta_dot += tau theta_acc``. Constants: g = 9.8, m_cart = 1.0, m_pole = 0.1, l = 0.5,
F = 10, tau = 0.02. Reward 1 for every step taken (the failing step included); the episode
terminates when ``|x| > 2.4`` or ``|theta| > 12 degrees`` and is truncated after 500 steps.
Start states are uniform in [-0.05, 0.05]^4. These are the classic-control task's
conventions, so returns are comparable with published figures.

``cartpole_dynamics`` is vectorised over a batch of states; ``CartPoleVec`` runs N
independent episodes in lock step (finished ones freeze and earn nothing).
"""

from __future__ import annotations

import math

import numpy as np

from oxinet.rl.env import Env

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
HALF_LENGTH = 0.5
FORCE_MAG = 10.0
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360
MAX_STEPS = 500


def cartpole_dynamics(state, action, *, gravity=GRAVITY, mass_cart=MASS_CART, mass_pole=MASS_POLE,
                      half_length=HALF_LENGTH, force_mag=FORCE_MAG, tau=TAU) -> np.ndarray:
    """One Euler step. state: (4,) or (N, 4); action: int or (N,) in {0, 1}. Returns the
    next state(s) with the same shape, float64."""
    s = np.asarray(state, np.float64)
    if s.shape[-1:] != (4,) or s.ndim > 2:
        raise ValueError(f"cartpole_dynamics: 'state' must have shape (4,) or (N, 4), got {s.shape}")
    a = np.asarray(action)
    if not np.all((a == 0) | (a == 1)):
        raise ValueError("cartpole_dynamics: 'action' must be 0 (left) or 1 (right)")
    x, x_dot, theta, theta_dot = (s[..., i] for i in range(4))
    force = np.where(a == 1, force_mag, -force_mag)
    total = mass_cart + mass_pole
    pml = mass_pole * half_length
    cos, sin = np.cos(theta), np.sin(theta)
    tmp = (force + pml * theta_dot ** 2 * sin) / total
    theta_acc = (gravity * sin - cos * tmp) / (half_length * (4.0 / 3.0 - mass_pole * cos ** 2 / total))
    x_acc = tmp - pml * theta_acc * cos / total
    return np.stack([x + tau * x_dot, x_dot + tau * x_acc,
                     theta + tau * theta_dot, theta_dot + tau * theta_acc], axis=-1)


def _failed(s):
    return (np.abs(s[..., 0]) > X_THRESHOLD) | (np.abs(s[..., 2]) > THETA_THRESHOLD)


class CartPole(Env):
    """Single cart-pole environment; observation is the (4,) float64 state."""

    action_space_n = 2
    observation_shape = (4,)

    def __init__(self, *, max_steps: int = MAX_STEPS, seed: int | None = None):
        super().__init__(seed)
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"CartPole: 'max_steps' must be a positive int, got {max_steps!r}")
        self.max_steps = int(max_steps)
        self.state = np.zeros(4)
        self._t = 0

    def _reset(self):
        self.state = self._rng.uniform(-0.05, 0.05, 4)
        self._t = 0
        return self.state.copy()

    def _step(self, a):
        self.state = cartpole_dynamics(self.state, a)
        self._t += 1
        terminated = bool(_failed(self.state))
        truncated = (not terminated) and self._t >= self.max_steps
        return self.state.copy(), 1.0, terminated, truncated, {}


class CartPoleVec:
    """N cart-poles stepped together. ``reset(seed=None) -> (N, 4)``;
    ``step(actions (N,)) -> (obs (N, 4), rewards (N,), terminated (N,), truncated (N,), info)``.
    An episode that has ended stays frozen (reward 0, flags stay set) until ``reset``;
    ``done`` is the mask of ended episodes and ``returns`` the running returns."""

    action_space_n = 2
    observation_shape = (4,)

    def __init__(self, num_envs: int, *, max_steps: int = MAX_STEPS, seed: int | None = None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"CartPoleVec: 'num_envs' must be a positive int, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.max_steps = int(max_steps)
        self._rng = np.random.default_rng(seed)
        self.state = np.zeros((self.num_envs, 4))
        self.done = np.ones(self.num_envs, bool)

    def reset(self, seed: int | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.state = self._rng.uniform(-0.05, 0.05, (self.num_envs, 4))
        self.terminated = np.zeros(self.num_envs, bool)
        self.truncated = np.zeros(self.num_envs, bool)
        self.done = np.zeros(self.num_envs, bool)
        self.returns = np.zeros(self.num_envs)
        self._t = 0
        return self.state.copy()

    def step(self, actions):
        if not hasattr(self, "returns"):
            raise RuntimeError("CartPoleVec.step: call reset() first")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,):
            raise ValueError(f"CartPoleVec.step: 'actions' must have shape ({self.num_envs},), got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer) and a.dtype != bool:
            raise TypeError(f"CartPoleVec.step: 'actions' must be integers, got dtype {a.dtype}")
        alive = ~self.done
        nxt = cartpole_dynamics(self.state, a.astype(np.int64))
        self.state = np.where(alive[:, None], nxt, self.state)
        self._t += 1
        rewards = alive.astype(np.float64)
        self.returns += rewards
        newly_term = alive & _failed(self.state)
        self.terminated |= newly_term
        if self._t >= self.max_steps:
            self.truncated |= alive & ~newly_term
        self.done = self.terminated | self.truncated
        return self.state.copy(), rewards, self.terminated.copy(), self.truncated.copy(), {}


def linear_policy_returns(weights, *, n_episodes: int = 10, max_steps: int = MAX_STEPS,
                          seed: int | None = 0) -> np.ndarray:
    """Returns of the deterministic policy ``action = 1 if state @ w[:4] + w[4] > 0 else 0``
    (``weights`` of shape (4,) or (5,)) over ``n_episodes`` episodes run in lock step."""
    w = np.asarray(weights, np.float64).ravel()
    if w.shape not in ((4,), (5,)):
        raise ValueError(f"linear_policy_returns: 'weights' must have 4 or 5 entries, got shape {w.shape}")
    bias = w[4] if w.size == 5 else 0.0
    env = CartPoleVec(n_episodes, max_steps=max_steps, seed=seed)
    s = env.reset()
    while not env.done.all():
        s, *_ = env.step((s @ w[:4] + bias > 0).astype(np.int64))
    return env.returns.copy()


def random_search_linear_policy(n_candidates: int = 50, *, n_episodes: int = 5, max_steps: int = MAX_STEPS,
                                seed: int = 0):
    """Random search over linear policies ``action = [state @ w > 0]`` with w ~ U[-1, 1]^4
    (no bias: the upright state should not prefer a side); returns (best weights, best mean
    return over ``n_episodes``). Stops early once a candidate reaches ``max_steps`` on every
    episode. The simplest policy search that solves cart-pole."""
    rng = np.random.default_rng(seed)
    best_w, best = None, -np.inf
    for i in range(n_candidates):
        w = rng.uniform(-1, 1, 4)
        ret = linear_policy_returns(w, n_episodes=n_episodes, max_steps=max_steps, seed=seed + 1 + i).mean()
        if ret > best:
            best_w, best = w, float(ret)
        if best >= max_steps:
            break
    return best_w, best
