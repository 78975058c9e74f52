"""Reinforcement learning without neural networks: tabular Q-learning on a grid world
(compared with the optimal policy from value iteration), and cart-pole balanced by a
linear policy found by random search.

Run: python examples/rl_gridworld_cartpole.py   (a few seconds)
"""

from __future__ import annotations

import numpy as np

from oxinet.rl import (GridWorld, linear_policy_returns, q_learning, random_search_linear_policy, run_policy,
                       value_iteration)

WALLS = [(1, 1), (1, 2), (1, 3), (3, 1), (3, 2), (3, 3), (5, 3), (5, 4), (5, 5)]


def main(n_episodes: int = 1500, n_candidates: int = 100, eval_episodes: int = 100, slip_prob: float = 0.1,
         seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    env = GridWorld(7, 7, walls=WALLS, slip_prob=slip_prob, max_steps=200, seed=seed)
    P, R, term = env.transition_model()
    _, _, pi_star = value_iteration(P, R, gamma=0.99, terminal=term)
    res = q_learning(env, n_episodes, alpha=0.1, gamma=0.99, seed=seed)
    q_ret = run_policy(env, res.policy, eval_episodes, seed=seed + 1).mean()
    opt_ret = run_policy(env, pi_star, eval_episodes, seed=seed + 1).mean()
    say(f"grid world 7x7 (slip {slip_prob}): Q-learning greedy return {q_ret:.2f}, "
        f"value-iteration optimum {opt_ret:.2f} (mean of {eval_episodes} episodes)")
    say(env.render(res.policy))

    w, best = random_search_linear_policy(n_candidates, n_episodes=5, seed=seed)
    avg = linear_policy_returns(w, n_episodes=eval_episodes, seed=seed + 12345).mean()
    say(f"cart-pole: random search over linear policies -> w = {np.round(w, 3)}, "
        f"average return {avg:.1f} over {eval_episodes} fresh episodes (max 500)")
    return {"q_learning_return": float(q_ret), "optimal_return": float(opt_ret),
            "cartpole_weights": w, "cartpole_average_return": float(avg)}


if __name__ == "__main__":
    main()
