"""Deep reinforcement learning with oxinet.nn: DQN (experience replay + target network)
and REINFORCE with a baseline.

Both work with the :mod:`oxinet.rl.env` interface; observations become float32 network
inputs through ``encode`` (identity for vector observations; pass e.g. ``env.one_hot``
for a discrete grid world).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import oxinet
from oxinet import nn
from oxinet.grad_mode import no_grad
from oxinet.rl.policies import EpsilonSchedule, epsilon_greedy
from oxinet.rl.replay import ReplayBuffer


def _identity(obs):
    return np.asarray(obs, np.float32)


@dataclass
class TrainingLog:
    episode_returns: list = field(default_factory=list)
    losses: list = field(default_factory=list)

    def mean_return(self, last: int = 10) -> float:
        r = self.episode_returns[-last:]
        return float(np.mean(r)) if r else float("nan")


def train_dqn(env, q_net: nn.Module, *, steps: int = 10_000, gamma: float = 0.99, lr: float = 1e-3,
              batch_size: int = 64, buffer_size: int = 50_000, warmup: int = 500, train_every: int = 1,
              target_update: int = 500, epsilon: EpsilonSchedule | None = None, grad_clip: float = 10.0,
              encode: Callable = _identity, seed: int = 0) -> TrainingLog:
    """Deep Q-learning (Mnih et al. 2015) for ``steps`` environment steps.

    q_net maps a batch of encoded observations (B, ...) to Q-values (B, actions). The
    target is ``r + gamma * (1 - terminated) * max_a Q_target(s', a)`` (a time-limit
    truncation still bootstraps); the loss is Huber; the target network is a copy synced
    every ``target_update`` steps; actions are epsilon-greedy with ``epsilon`` (linear
    decay from 1 to 0.05 over the first half by default). Trains ``q_net`` in place.
    """
    if steps < 1 or batch_size < 1 or warmup < batch_size:
        raise ValueError(f"train_dqn: need steps >= 1 and warmup ({warmup}) >= batch_size ({batch_size})")
    rng = np.random.default_rng(seed)
    epsilon = epsilon or EpsilonSchedule(1.0, 0.05, max(1, steps // 2))
    obs = env.reset(seed=seed)
    obs_shape = encode(obs).shape
    buffer = ReplayBuffer(buffer_size, obs_shape, seed=seed)
    target = copy.deepcopy(q_net)
    opt = oxinet.optim.Adam(q_net.parameters(), lr=lr)
    huber = nn.SmoothL1Loss()
    log = TrainingLog()
    ret = 0.0
    for t in range(steps):
        x = encode(obs)
        with no_grad():
            q = q_net(oxinet.tensor(x[None])).numpy()[0]
        action = int(epsilon_greedy(q, epsilon(t), rng))
        nxt, reward, terminated, truncated, _ = env.step(action)
        buffer.add(x, action, reward, encode(nxt), terminated)
        ret += reward
        obs = nxt
        if terminated or truncated:
            log.episode_returns.append(ret)
            ret = 0.0
            obs = env.reset()
        if t >= warmup and t % train_every == 0:
            b = buffer.sample(batch_size)
            with no_grad():
                q_next = target(oxinet.tensor(b.next_obs)).numpy().max(axis=1)
            y = (b.rewards + gamma * (1.0 - b.terminated.astype(np.float64)) * q_next).astype(np.float32)
            q_sa = q_net(oxinet.tensor(b.obs))[np.arange(batch_size), b.actions.astype(np.int64)]
            loss = huber(q_sa, oxinet.tensor(y))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q_net.parameters(), grad_clip)
            opt.step()
            log.losses.append(float(loss.item()))
        if t % target_update == 0:
            target.load_state_dict(q_net.state_dict())
    return log


def discounted_returns(rewards: np.ndarray, gamma: float, alive: np.ndarray | None = None) -> np.ndarray:
    """G_t = r_t + gamma G_{t+1} along axis 0 of ``rewards`` (T, ...); steps where
    ``alive`` is False contribute nothing."""
    r = np.asarray(rewards, np.float64)
    if alive is not None:
        r = r * alive
    g = np.zeros_like(r)
    running = np.zeros(r.shape[1:])
    for t in range(r.shape[0] - 1, -1, -1):
        running = r[t] + gamma * running
        g[t] = running
    return g


def train_reinforce(vec_env, policy: nn.Module, *, updates: int = 100, gamma: float = 0.99, lr: float = 1e-2,
                    baseline: nn.Module | None = None, baseline_lr: float = 1e-2, entropy_coef: float = 0.0,
                    seed: int = 0) -> TrainingLog:
    """REINFORCE (Williams 1992) with a baseline, on a lock-step vector of environments
    (``reset() -> (N, obs)``, ``step(actions) -> (obs, rewards, terminated, truncated, info)``
    with a ``done`` mask, like :class:`~oxinet.rl.CartPoleVec`).

    Each update plays N episodes to the end, then ascends
    ``sum_t log pi(a_t|s_t) (G_t - b(s_t))``; ``baseline`` is a value network fitted to the
    returns by MSE (None: the mean return at each time step across the batch). ``policy``
    maps observations (B, obs) to action logits (B, actions).
    """
    rng = np.random.default_rng(seed)
    opt = oxinet.optim.Adam(policy.parameters(), lr=lr)
    vopt = oxinet.optim.Adam(baseline.parameters(), lr=baseline_lr) if baseline is not None else None
    log = TrainingLog()
    for u in range(updates):
        obs = vec_env.reset(seed=seed + u)
        observations, actions, rewards, alive_mask = [], [], [], []
        while not vec_env.done.all():
            alive = ~vec_env.done
            with no_grad():
                logits = policy(oxinet.tensor(obs.astype(np.float32))).numpy()
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            a = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
            a = np.minimum(a, p.shape[1] - 1)
            observations.append(obs.astype(np.float32))
            actions.append(a)
            alive_mask.append(alive)
            obs, r, *_ = vec_env.step(a)
            rewards.append(r)
        alive = np.array(alive_mask)                                  # (T, N)
        g = discounted_returns(np.array(rewards), gamma, alive)      # (T, N)
        x = np.array(observations)[alive]                            # (M, obs) alive steps only
        act = np.array(actions)[alive]
        ret = g[alive]
        if baseline is not None:
            v = baseline(oxinet.tensor(x)).reshape(-1)
            with no_grad():
                adv = ret - v.numpy()
            vloss = ((v - oxinet.tensor(ret.astype(np.float32))) ** 2).mean()
            vopt.zero_grad()
            vloss.backward()
            vopt.step()
        else:
            mean_t = np.where(alive, g, 0).sum(1) / np.maximum(alive.sum(1), 1)
            adv = (g - mean_t[:, None])[alive]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        logp = nn.functional.log_softmax(policy(oxinet.tensor(x)), dim=1)
        chosen = logp[np.arange(len(act)), act]
        loss = -(chosen * oxinet.tensor(adv.astype(np.float32))).sum() / alive.shape[1]
        if entropy_coef:
            loss = loss + entropy_coef * (logp.exp() * logp).sum() / alive.shape[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.episode_returns.extend(vec_env.returns.tolist())
        log.losses.append(float(loss.item()))
    return log
