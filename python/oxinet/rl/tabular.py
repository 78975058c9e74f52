"""Tabular methods: value iteration on a known MDP and Q-learning from interaction.

Value iteration (Bellman optimality backup, to a fixed point)::

    Q(s, a) = R(s, a) + gamma * sum_s' P(s' | s, a) V(s'),   V(s) = max_a Q(s, a)

with V = 0 in terminal states. Q-learning (off-policy TD control)::

    Q(s, a) += alpha * (r + gamma * (1 - terminated) * max_a' Q(s', a') - Q(s, a))

acting epsilon-greedily with a decaying epsilon. Truncation (time limit) is not a terminal
state, so it still bootstraps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oxinet.rl.policies import EpsilonSchedule, epsilon_greedy, greedy_action


def value_iteration(P, R, gamma: float = 0.99, *, terminal=None, tol: float = 1e-10,
                    max_iter: int = 100_000):
    """Solve the Bellman optimality equation.

    P: (S, A, S') transition probabilities; R: (S, A) expected rewards; terminal: (S,) bool
    (value fixed at 0). Returns ``(V (S,), Q (S, A), policy (S,) int)``; the policy breaks
    ties towards the lowest action index. ``gamma == 1`` is allowed for episodic tasks where
    a terminal state is reachable from every state (the iteration is capped at ``max_iter``).
    """
    P = np.asarray(P, np.float64)
    R = np.asarray(R, np.float64)
    if P.ndim != 3 or P.shape[0] != P.shape[2]:
        raise ValueError(f"value_iteration: 'P' must have shape (S, A, S), got {P.shape}")
    if R.shape != P.shape[:2]:
        raise ValueError(f"value_iteration: 'R' must have shape {P.shape[:2]}, got {R.shape}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"value_iteration: 'gamma' must be in [0, 1], got {gamma}")
    S = P.shape[0]
    term = np.zeros(S, bool) if terminal is None else np.asarray(terminal, bool)
    if term.shape != (S,):
        raise ValueError(f"value_iteration: 'terminal' must have shape ({S},), got {term.shape}")
    V = np.zeros(S)
    Q = R.copy()
    for _ in range(max_iter):
        Q = R + gamma * (P @ V)
        Q[term] = 0.0
        V_new = Q.max(axis=1)
        delta = np.max(np.abs(V_new - V))
        V = V_new
        if delta < tol:
            break
    return V, Q, np.argmax(Q, axis=1)


@dataclass
class QLearningResult:
    Q: np.ndarray                                  # (S, A) action values
    returns: list = field(default_factory=list)    # undiscounted return per episode
    lengths: list = field(default_factory=list)    # steps per episode

    @property
    def policy(self) -> np.ndarray:
        return np.argmax(self.Q, axis=1)


def q_learning(env, n_episodes: int, *, alpha: float = 0.1, gamma: float = 0.99,
               epsilon=None, seed: int | None = 0, q_init: float = 0.0, Q=None) -> QLearningResult:
    """Tabular Q-learning on an environment with integer observations ``0..env.n_states-1``.

    epsilon: a float, or a callable of the episode index (default
    ``EpsilonSchedule(1.0, 0.05, n_episodes // 2)``). seed: seeds both the agent's
    generator and the environment's first ``reset`` (later episodes continue its stream).
    Q: optional (S, A) table to continue from (updated in place).
    """
    op = "q_learning"
    n_states = getattr(env, "n_states", None)
    if n_states is None:
        raise TypeError(f"{op}: 'env' must have integer observations and an 'n_states' attribute")
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"{op}: 'n_episodes' must be a positive int, got {n_episodes!r}")
    if not 0 < float(alpha) <= 1:
        raise ValueError(f"{op}: 'alpha' must be in (0, 1], got {alpha}")
    if not 0 <= float(gamma) <= 1:
        raise ValueError(f"{op}: 'gamma' must be in [0, 1], got {gamma}")
    A = env.action_space_n
    if Q is None:
        Q = np.full((n_states, A), float(q_init))
    elif np.shape(Q) != (n_states, A):
        raise ValueError(f"{op}: 'Q' must have shape ({n_states}, {A}), got {np.shape(Q)}")
    if epsilon is None:
        epsilon = EpsilonSchedule(1.0, 0.05, max(1, n_episodes // 2))
    eps_fn = epsilon if callable(epsilon) else (lambda t, e=float(epsilon): e)
    rng = np.random.default_rng(seed)
    result = QLearningResult(Q)
    for ep in range(n_episodes):
        s = env.reset(seed=seed if ep == 0 else None)
        eps = eps_fn(ep)
        total, steps = 0.0, 0
        while True:
            a = epsilon_greedy(Q[s], eps, rng)
            s2, r, terminated, truncated, _ = env.step(a)
            target = r if terminated else r + gamma * Q[s2].max()
            Q[s, a] += alpha * (target - Q[s, a])
            total += r
            steps += 1
            s = s2
            if terminated or truncated:
                break
        result.returns.append(total)
        result.lengths.append(steps)
    return result


def run_policy(env, policy, n_episodes: int = 1, *, seed: int | None = 0) -> np.ndarray:
    """Undiscounted returns of ``policy`` (an (S,) array of actions, or a callable obs ->
    action) over ``n_episodes`` episodes."""
    act = (lambda s: int(policy[s])) if not callable(policy) else policy
    returns = []
    for ep in range(n_episodes):
        s = env.reset(seed=seed if ep == 0 else None)
        total = 0.0
        while True:
            s, r, terminated, truncated, _ = env.step(act(s))
            total += r
            if terminated or truncated:
                break
        returns.append(total)
    return np.asarray(returns)


def greedy_policy(Q) -> np.ndarray:
    """(S,) greedy actions of an (S, A) table (lowest index on ties)."""
    return greedy_action(np.asarray(Q))
