"""Reinforcement learning without autograd: environments, tabular methods, replay.

Environments follow the interface in :mod:`oxinet.rl.env` (``reset(seed) -> obs``,
``step(a) -> (obs, reward, terminated, truncated, info)``): :class:`GridWorld` and
:class:`CartPole` (plus the lock-step :class:`CartPoleVec`). Tabular Q-learning and
value iteration, epsilon-greedy / softmax action selection, and a replay buffer for DQN.
"""

from oxinet.rl.cartpole import (CartPole, CartPoleVec, cartpole_dynamics, linear_policy_returns,
                                random_search_linear_policy)
from oxinet.rl.env import Env
from oxinet.rl.gridworld import GridWorld
from oxinet.rl.policies import EpsilonSchedule, epsilon_greedy, greedy_action, softmax_policy, softmax_probs
from oxinet.rl.replay import Batch, ReplayBuffer
from oxinet.rl.deep import TrainingLog, discounted_returns, train_dqn, train_reinforce
from oxinet.rl.tabular import QLearningResult, greedy_policy, q_learning, run_policy, value_iteration

__all__ = [
    "CartPole", "CartPoleVec", "cartpole_dynamics", "linear_policy_returns", "random_search_linear_policy",
    "Env", "GridWorld", "EpsilonSchedule", "epsilon_greedy", "greedy_action", "softmax_policy",
    "softmax_probs", "Batch", "ReplayBuffer", "QLearningResult", "greedy_policy", "q_learning",
    "run_policy", "value_iteration", "TrainingLog", "discounted_returns", "train_dqn", "train_reinforce",
]
