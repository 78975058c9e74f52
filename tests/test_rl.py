"""Environments, value iteration, Q-learning, action selection and the replay buffer."""

import math

import numpy as np
import pytest

from oxinet.rl import (CartPole, CartPoleVec, EpsilonSchedule, GridWorld, ReplayBuffer, cartpole_dynamics,
                       epsilon_greedy, greedy_action, linear_policy_returns, q_learning,
                       random_search_linear_policy, run_policy, softmax_policy, softmax_probs, value_iteration)

WALLS = [(1, 1), (1, 2), (1, 3), (3, 1), (3, 2), (3, 3)]


# ------------------------------------------------------------------ grid world

def test_gridworld_moves_walls_and_rewards():
    env = GridWorld(3, 3, walls=[(1, 1)], step_reward=-1, goal_reward=5, max_steps=50)
    s = env.reset()
    assert s == 0 and env.observation_shape == () and env.action_space_n == 4
    assert env.step(0)[0] == 0          # up: off the grid, stays
    assert env.step(3)[0] == 0          # left: off the grid
    s, r, term, trunc, info = env.step(2)  # down to (1, 0)
    assert s == 3 and r == -1 and not term and info["cell"] == (1, 0)
    assert env.step(1)[0] == 3          # right into the wall: stays
    env.step(2)
    env.step(1)
    s, r, term, trunc, _ = env.step(1)
    assert s == 8 and r == 5 and term and not trunc
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_gridworld_truncation_and_seeding():
    env = GridWorld(3, 3, max_steps=4, slip_prob=0.5)
    env.reset(seed=3)
    outs = [env.step(0) for _ in range(4)]
    assert outs[-1][3] and not any(o[3] for o in outs[:-1])
    env.reset(seed=3)
    again = [env.step(0) for _ in range(4)]
    assert [o[0] for o in outs] == [o[0] for o in again]


def test_gridworld_slip_frequencies_match_transition_model():
    env = GridWorld(5, 5, start=(2, 2), goal=(0, 0), slip_prob=0.3, seed=0)
    P, R, term = env.transition_model()
    np.testing.assert_allclose(P.sum(axis=2), 1.0)
    s0 = env.state_index((2, 2))
    counts = np.zeros(env.n_states)
    n = 6000
    for _ in range(n):
        env.reset()
        counts[env.step(1)[0]] += 1  # intend right
    np.testing.assert_allclose(counts / n, P[s0, 1], atol=0.02)
    assert P[s0, 1, env.state_index((2, 3))] == pytest.approx(0.7)
    assert P[s0, 1, env.state_index((1, 2))] == pytest.approx(0.15)
    assert R[s0, 1] == pytest.approx(-1.0)


def test_value_iteration_shortest_path():
    env = GridWorld(4, 4, step_reward=-1, goal_reward=10)
    P, R, term = env.transition_model()
    V, Q, pi = value_iteration(P, R, gamma=1.0, terminal=term)
    # Manhattan distance 6: five -1 steps then the +10 step
    assert V[0] == pytest.approx(5.0)
    assert run_policy(env, pi)[0] == 5.0
    assert V[env.state_index((3, 2))] == pytest.approx(10.0)


def _policy_value(P, R, term, pi, gamma):
    S = P.shape[0]
    Ppi = P[np.arange(S), pi]
    Rpi = R[np.arange(S), pi]
    Ppi[term] = 0
    Rpi[term] = 0
    return np.linalg.solve(np.eye(S) - gamma * Ppi, Rpi)


def test_q_learning_reaches_optimal_return_deterministic():
    env = GridWorld(5, 5, walls=WALLS, seed=0)
    P, R, term = env.transition_model()
    _, _, pi_star = value_iteration(P, R, 0.99, terminal=term)
    optimal = run_policy(env, pi_star)[0]
    assert optimal == 3.0  # 8 moves: seven -1 and the +10
    res = q_learning(env, 300, alpha=0.5, gamma=0.99, seed=0)
    assert run_policy(env, res.policy)[0] == optimal
    assert np.mean(res.returns[:20]) < np.mean(res.returns[-20:])


def test_q_learning_slippery_matches_value_iteration():
    gamma = 0.99
    env = GridWorld(5, 5, walls=WALLS, slip_prob=0.2, seed=0)
    P, R, term = env.transition_model()
    V_star, Q_star, pi_star = value_iteration(P, R, gamma, terminal=term)
    res = q_learning(env, 1500, alpha=0.1, gamma=gamma, seed=1)
    V_q = _policy_value(P, R, term, res.policy, gamma)
    assert V_q[0] >= V_star[0] - 0.25
    assert abs(res.Q[0].max() - V_star[0]) < 1.0


def test_rl_bad_input():
    with pytest.raises(ValueError, match="'walls'"):
        GridWorld(3, 3, walls=[(0, 0)])
    with pytest.raises(ValueError, match="'goal'"):
        GridWorld(3, 3, goal=(5, 5))
    with pytest.raises(ValueError, match="'slip_prob'"):
        GridWorld(slip_prob=1.5)
    env = GridWorld()
    env.reset()
    with pytest.raises(ValueError, match="'action'"):
        env.step(4)
    with pytest.raises(TypeError, match="'action'"):
        env.step(1.0)
    with pytest.raises(TypeError, match="'seed'"):
        env.reset(seed="x")
    with pytest.raises(TypeError, match="'env'"):
        q_learning(CartPole(), 3)
    with pytest.raises(ValueError, match="'P'"):
        value_iteration(np.zeros((2, 2, 3)), np.zeros((2, 2)))


# ------------------------------------------------------------------ cart-pole

def test_cartpole_step_by_hand_from_rest():
    # F = +10, theta = 0: tmp = 10/1.1 = 100/11; theta_acc = -(100/11) / (0.5 (4/3 - 0.1/1.1)) = -600/41;
    # x_acc = 100/11 + 0.05 (600/41) / 1.1 = 400/41. One Euler step of 0.02 s from rest:
    nxt = cartpole_dynamics(np.zeros(4), 1)
    np.testing.assert_allclose(nxt, [0.0, 0.02 * 400 / 41, 0.0, -0.02 * 600 / 41], rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(cartpole_dynamics(np.zeros(4), 0), -nxt, atol=1e-16)


def test_cartpole_step_general_state():
    s = np.array([0.1, -0.2, 0.05, 0.3])
    nxt = cartpole_dynamics(s, 0)
    # positions move with the old velocities (explicit Euler)
    assert nxt[0] == pytest.approx(0.1 + 0.02 * -0.2, abs=1e-15)
    assert nxt[2] == pytest.approx(0.05 + 0.02 * 0.3, abs=1e-15)
    ct, st = math.cos(0.05), math.sin(0.05)
    tmp = (-10 + 0.1 * 0.5 * 0.3 ** 2 * st) / 1.1
    th_acc = (9.8 * st - ct * tmp) / (0.5 * (4 / 3 - 0.1 * ct ** 2 / 1.1))
    x_acc = tmp - 0.05 * th_acc * ct / 1.1
    assert nxt[1] == pytest.approx(-0.2 + 0.02 * x_acc, rel=1e-13)
    assert nxt[3] == pytest.approx(0.3 + 0.02 * th_acc, rel=1e-13)
    batch = cartpole_dynamics(np.stack([s, np.zeros(4)]), np.array([0, 1]))
    np.testing.assert_allclose(batch[0], nxt)
    np.testing.assert_allclose(batch[1], cartpole_dynamics(np.zeros(4), 1))


def test_cartpole_termination_and_truncation():
    env = CartPole(seed=0)
    obs = env.reset()
    assert obs.shape == (4,) and np.all(np.abs(obs) <= 0.05)
    steps, total = 0, 0.0
    while True:  # always push right: the pole falls left past 12 degrees
        obs, r, term, trunc, _ = env.step(1)
        steps += 1
        total += r
        if term or trunc:
            break
    assert term and not trunc and total == steps
    assert abs(obs[2]) > 12 * math.pi / 180 or abs(obs[0]) > 2.4
    env = CartPole(max_steps=5, seed=0)
    env.reset()
    flags = [env.step(i % 2)[3] for i in range(5)]
    assert flags == [False] * 4 + [True]


def test_cartpole_vec_matches_single_envs():
    vec = CartPoleVec(3, seed=0)
    s = vec.reset()
    singles = []
    for i in range(3):
        e = CartPole()
        e.reset()
        e.state = s[i].copy()
        singles.append(e)
    rng = np.random.default_rng(0)
    for _ in range(40):
        a = rng.integers(0, 2, 3)
        alive = ~vec.done
        s, r, term, trunc, _ = vec.step(a)
        for i in np.flatnonzero(alive):
            o, ri, ti, _, _ = singles[i].step(int(a[i]))
            np.testing.assert_allclose(s[i], o)
            assert term[i] == ti and r[i] == ri
    np.testing.assert_array_equal(vec.returns, [e._t for e in singles])


def test_cartpole_bad_input():
    vec = CartPoleVec(2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.array([0, 1]))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="'actions'"):
        vec.step(np.array([0, 1, 1]))
    with pytest.raises(TypeError, match="'actions'"):
        vec.step(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="'action'"):
        cartpole_dynamics(np.zeros(4), 2)
    with pytest.raises(ValueError, match="'state'"):
        cartpole_dynamics(np.zeros(3), 1)
    with pytest.raises(ValueError, match="'weights'"):
        linear_policy_returns(np.zeros(3))


def test_linear_policy_random_search_balances():
    w, best = random_search_linear_policy(30, n_episodes=3, seed=0)
    assert best >= 400
    assert linear_policy_returns(w, n_episodes=10, seed=99).mean() >= 300
    assert linear_policy_returns(np.zeros(4), n_episodes=4).max() < 100  # always left


# ------------------------------------------------------------------ action selection

def test_greedy_and_epsilon_greedy():
    q = np.array([1.0, 3.0, 3.0, 0.0])
    assert greedy_action(q) == 1
    rng = np.random.default_rng(0)
    picks = np.array([greedy_action(q, rng) for _ in range(2000)])
    assert set(picks) == {1, 2} and abs(np.mean(picks == 1) - 0.5) < 0.05
    acts = np.array([epsilon_greedy(q, 0.4, rng) for _ in range(8000)])
    freq = np.bincount(acts, minlength=4) / len(acts)
    np.testing.assert_allclose(freq, [0.1, 0.4, 0.4, 0.1], atol=0.02)
    batch = epsilon_greedy(np.tile(q, (5, 1)), 0.0, rng)
    assert batch.shape == (5,) and set(batch) <= {1, 2}
    with pytest.raises(ValueError, match="'epsilon'"):
        epsilon_greedy(q, 1.5, rng)


def test_softmax_policy():
    q = np.array([1.0, 2.0, 0.5])
    p = softmax_probs(q, 0.5)
    np.testing.assert_allclose(p, np.exp(q / 0.5) / np.exp(q / 0.5).sum())
    assert np.all(np.isfinite(softmax_probs(np.array([1000.0, 0.0]))))
    rng = np.random.default_rng(1)
    acts = np.array([softmax_policy(q, 0.5, rng) for _ in range(8000)])
    np.testing.assert_allclose(np.bincount(acts, minlength=3) / 8000, p, atol=0.02)
    many = softmax_policy(np.tile(q, (8000, 1)), 0.5, rng)
    np.testing.assert_allclose(np.bincount(many, minlength=3) / 8000, p, atol=0.02)
    with pytest.raises(ValueError, match="'temperature'"):
        softmax_probs(q, 0)


def test_epsilon_schedule():
    lin = EpsilonSchedule(1.0, 0.1, 10)
    assert lin(0) == 1.0 and lin(5) == pytest.approx(0.55) and lin(10) == pytest.approx(0.1) and lin(99) == 0.1
    exp = EpsilonSchedule(1.0, 0.0, 10, kind="exponential")
    assert exp(10) == pytest.approx(math.exp(-1))
    with pytest.raises(ValueError, match="'kind'"):
        EpsilonSchedule(kind="cosine")


# ------------------------------------------------------------------ replay buffer

def test_replay_buffer_ring_and_contents():
    buf = ReplayBuffer(10, (2,), seed=0)
    for i in range(15):
        buf.add([i, -i], i % 3, float(i), [i + 1, -i - 1], i == 14)
    assert len(buf) == 10
    assert sorted(buf.obs[:, 0].astype(int)) == list(range(5, 15))  # oldest five overwritten
    b = buf.sample(64)
    assert b.obs.shape == (64, 2) and b.actions.shape == (64,)
    # each sampled row is a consistent transition
    np.testing.assert_array_equal(b.next_obs[:, 0], b.obs[:, 0] + 1)
    np.testing.assert_array_equal(b.rewards, b.obs[:, 0])
    np.testing.assert_array_equal(b.actions, b.obs[:, 0].astype(int) % 3)
    np.testing.assert_array_equal(b.terminated, b.obs[:, 0] == 14)
    assert b.obs.base is not buf.obs  # a copy, not a view


def test_replay_buffer_sampling_is_uniform_and_seeded():
    buf = ReplayBuffer(50, (), obs_dtype=np.int64, seed=3)
    buf.add_batch(np.arange(20), np.zeros(20, int), np.zeros(20), np.arange(20), np.zeros(20, bool))
    idx = np.concatenate([buf.sample(100).indices for _ in range(200)])
    assert idx.min() >= 0 and idx.max() < 20  # never the unfilled slots
    freq = np.bincount(idx, minlength=20) / idx.size
    np.testing.assert_allclose(freq, 1 / 20, atol=0.01)
    a = ReplayBuffer(50, (), seed=9)
    b = ReplayBuffer(50, (), seed=9)
    for buf_ in (a, b):
        buf_.add_batch(np.arange(20.0), np.zeros(20, int), np.zeros(20), np.arange(20.0), np.zeros(20, bool))
    np.testing.assert_array_equal(a.sample(8).indices, b.sample(8).indices)
    distinct = a.sample(20, replace=False).indices
    assert len(set(distinct)) == 20


def test_replay_buffer_bad_input():
    buf = ReplayBuffer(4, (3,))
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1)
    with pytest.raises(ValueError, match="'obs'"):
        buf.add(np.zeros(2), 0, 0.0, np.zeros(3), False)
    buf.add(np.zeros(3), 0, 0.0, np.zeros(3), False)
    with pytest.raises(ValueError, match="'batch_size'"):
        buf.sample(2, replace=False)
    with pytest.raises(ValueError, match="'capacity'"):
        ReplayBuffer(0)
    big = ReplayBuffer(3, ())
    big.add_batch(np.arange(5.0), np.arange(5), np.arange(5.0), np.arange(5.0), np.zeros(5, bool))
    assert sorted(big.obs) == [2.0, 3.0, 4.0]
