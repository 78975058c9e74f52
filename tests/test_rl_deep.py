"""DQN and REINFORCE (oxinet.rl.deep): returns, learning on the grid world and cart-pole."""

import numpy as np
import pytest

import oxinet
from oxinet import nn, rl


def test_discounted_returns_by_hand():
    r = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 5.0]])
    alive = np.array([[1, 1], [1, 1], [1, 0]], bool)
    g = rl.discounted_returns(r, 0.5, alive)
    np.testing.assert_allclose(g[:, 0], [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3])
    np.testing.assert_allclose(g[:, 1], [0 + 0.5 * 1, 1, 0])


def test_dqn_finds_the_optimal_grid_world_policy():
    env = rl.GridWorld(4, 4, walls=[(1, 1), (2, 1)], max_steps=30, seed=0)
    P, R, terminal = env.transition_model()
    V, Q, pi = rl.value_iteration(P, R, gamma=0.95, terminal=terminal)
    optimal = rl.run_policy(env, pi, 1)[0]
    oxinet.manual_seed(0)
    q_net = nn.Sequential(nn.Linear(env.n_states, 32), nn.ReLU(), nn.Linear(32, 4))
    log = rl.train_dqn(env, q_net, steps=2500, gamma=0.95, lr=3e-3, batch_size=32, warmup=200,
                       target_update=100, encode=env.one_hot, seed=0)
    assert log.losses and len(log.episode_returns) > 10
    greedy = lambda s: int(q_net(oxinet.tensor(env.one_hot(s)[None])).numpy().argmax())  # noqa: E731
    assert rl.run_policy(env, greedy, 1)[0] == optimal


def test_reinforce_learns_to_balance_the_pole():
    oxinet.manual_seed(0)
    policy = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    log = rl.train_reinforce(rl.CartPoleVec(16, seed=0), policy, updates=25, lr=0.02)
    first, last = np.mean(log.episode_returns[:16]), np.mean(log.episode_returns[-16:])
    assert first < 60 and last >= 150, (first, last)


def test_reinforce_with_a_value_baseline():
    oxinet.manual_seed(1)
    policy = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    value = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
    log = rl.train_reinforce(rl.CartPoleVec(16, seed=1), policy, updates=25, lr=0.02, baseline=value,
                             baseline_lr=0.01, entropy_coef=0.01, seed=1)
    assert np.mean(log.episode_returns[-16:]) >= 100


def test_dqn_bad_arguments():
    with pytest.raises(ValueError, match="warmup"):
        rl.train_dqn(rl.CartPole(), nn.Linear(4, 2), steps=10, warmup=5, batch_size=32)
