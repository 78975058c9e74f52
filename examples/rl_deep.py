"""Deep reinforcement learning on cart-pole: REINFORCE with a value baseline, and DQN
with experience replay and a target network (I2DL's RL chapter).

    python examples/rl_deep.py
"""

from __future__ import annotations

import time

import numpy as np

import oxinet
from oxinet import nn, rl


def main(reinforce_updates: int = 40, dqn_steps: int = 15_000, seed: int = 0) -> dict:
    results = {}
    oxinet.manual_seed(seed)
    policy = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    value = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
    t0 = time.perf_counter()
    log = rl.train_reinforce(rl.CartPoleVec(16, seed=seed), policy, updates=reinforce_updates, lr=0.02,
                             baseline=value, seed=seed)
    results["reinforce"] = float(np.mean(log.episode_returns[-16:]))
    print(f"REINFORCE + value baseline, {reinforce_updates} updates x 16 episodes "
          f"({time.perf_counter() - t0:.1f} s): mean return of the last batch {results['reinforce']:.1f} (max 500)")
    if dqn_steps:
        oxinet.manual_seed(seed)
        q_net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        t0 = time.perf_counter()
        log = rl.train_dqn(rl.CartPole(seed=seed), q_net, steps=dqn_steps, lr=1e-3, target_update=250, seed=seed)
        results["dqn"] = log.mean_return(10)
        print(f"DQN, {dqn_steps} steps, {len(log.episode_returns)} episodes ({time.perf_counter() - t0:.1f} s): "
              f"mean return of the last 10 episodes {results['dqn']:.1f}")
    return results


if __name__ == "__main__":
    main()
