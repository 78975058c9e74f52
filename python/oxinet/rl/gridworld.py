"""A grid world: reach the goal cell in as few steps as possible.

Cells are (row, col), row 0 at the top. Actions: 0 up, 1 right, 2 down, 3 left. A move
into a wall or off the grid leaves the agent where it is. With ``slip_prob`` p the
intended move is replaced, with probability p/2 each, by one of the two perpendicular
moves (the icy-lake model). Every step yields ``step_reward`` except the one that enters
the goal, which yields ``goal_reward`` and terminates; ``max_steps`` truncates.

Observations are the state index ``row * width + col`` (``observation_shape == ()``,
``n_states`` of them); ``one_hot(obs)`` encodes them for function approximators.
``transition_model()`` returns the exact MDP (P, R) for dynamic programming.
"""

from __future__ import annotations

import numpy as np

from oxinet.rl.env import Env

_MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)])
ACTION_NAMES = ("up", "right", "down", "left")


class GridWorld(Env):
    action_space_n = 4
    observation_shape = ()

    def __init__(self, height: int = 5, width: int = 5, *, start=(0, 0), goal=None, walls=(),
                 step_reward: float = -1.0, goal_reward: float = 10.0, slip_prob: float = 0.0,
                 max_steps: int = 100, seed: int | None = None):
        super().__init__(seed)
        op = "GridWorld"
        for name, v in (("height", height), ("width", width), ("max_steps", max_steps)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{op}: '{name}' must be an int, got {type(v).__name__}")
            if v < 1:
                raise ValueError(f"{op}: '{name}' must be >= 1, got {v}")
        self.height, self.width, self.max_steps = int(height), int(width), int(max_steps)
        goal = (height - 1, width - 1) if goal is None else goal
        self.start = self._cell(start, "start")
        self.goal = self._cell(goal, "goal")
        self.walls = frozenset(self._cell(w, "walls") for w in walls)
        if self.start in self.walls or self.goal in self.walls:
            raise ValueError(f"{op}: 'walls' must not contain the start {self.start} or the goal {self.goal}")
        if self.start == self.goal:
            raise ValueError(f"{op}: 'start' and 'goal' must differ, both are {self.start}")
        if not 0.0 <= float(slip_prob) <= 1.0:
            raise ValueError(f"{op}: 'slip_prob' must be in [0, 1], got {slip_prob}")
        self.slip_prob = float(slip_prob)
        self.step_reward = float(step_reward)
        self.goal_reward = float(goal_reward)
        self.n_states = self.height * self.width
        self._pos = self.start
        self._t = 0

    def _cell(self, c, name):
        try:
            r, col = (int(v) for v in c)
        except (TypeError, ValueError):
            raise TypeError(f"GridWorld: '{name}' entries must be (row, col) pairs, got {c!r}") from None
        if not (0 <= r < self.height and 0 <= col < self.width):
            raise ValueError(f"GridWorld: '{name}' cell {(r, col)} is outside the "
                             f"{self.height}x{self.width} grid")
        return (r, col)

    def state_index(self, cell) -> int:
        return cell[0] * self.width + cell[1]

    def cell_of(self, s: int):
        return divmod(int(s), self.width)

    def one_hot(self, obs) -> np.ndarray:
        """(n_states,) float32 one-hot vector (or (N, n_states) for an array of states)."""
        obs = np.asarray(obs, np.int64)
        out = np.zeros(obs.shape + (self.n_states,), np.float32)
        np.put_along_axis(out, obs[..., None], 1.0, axis=-1)
        return out

    def _move(self, cell, a):
        r, c = cell[0] + _MOVES[a][0], cell[1] + _MOVES[a][1]
        if 0 <= r < self.height and 0 <= c < self.width and (r, c) not in self.walls:
            return (int(r), int(c))
        return cell

    def _outcomes(self, a):
        """[(probability, actual action)] for intended action a."""
        if self.slip_prob == 0:
            return [(1.0, a)]
        p = self.slip_prob / 2
        return [(1.0 - self.slip_prob, a), (p, (a + 1) % 4), (p, (a + 3) % 4)]

    def _reset(self):
        self._pos = self.start
        self._t = 0
        return self.state_index(self._pos)

    def _step(self, a):
        actual = a
        if self.slip_prob > 0:
            u = self._rng.random()
            if u < self.slip_prob:
                actual = (a + 1) % 4 if u < self.slip_prob / 2 else (a + 3) % 4
        self._pos = self._move(self._pos, actual)
        self._t += 1
        terminated = self._pos == self.goal
        reward = self.goal_reward if terminated else self.step_reward
        truncated = (not terminated) and self._t >= self.max_steps
        return self.state_index(self._pos), reward, terminated, truncated, {"cell": self._pos}

    def transition_model(self):
        """Exact MDP: ``P`` (S, A, S') transition probabilities, ``R`` (S, A) expected
        immediate reward, ``terminal`` (S,) bool. Wall cells and the goal are absorbing with
        zero reward (wall cells are unreachable)."""
        S, A = self.n_states, self.action_space_n
        P = np.zeros((S, A, S))
        R = np.zeros((S, A))
        terminal = np.zeros(S, bool)
        for s in range(S):
            cell = self.cell_of(s)
            if cell == self.goal or cell in self.walls:
                terminal[s] = True
                P[s, :, s] = 1.0
                continue
            for a in range(A):
                for p, actual in self._outcomes(a):
                    nxt = self._move(cell, actual)
                    P[s, a, self.state_index(nxt)] += p
                    R[s, a] += p * (self.goal_reward if nxt == self.goal else self.step_reward)
        return P, R, terminal

    def render(self, policy=None) -> str:
        """Text picture: S start, G goal, # wall, arrows for a (S,) policy if given."""
        arrows = "^>v<"
        lines = []
        for r in range(self.height):
            row = []
            for c in range(self.width):
                cell = (r, c)
                if cell in self.walls:
                    row.append("#")
                elif cell == self.goal:
                    row.append("G")
                elif policy is not None:
                    row.append(arrows[int(policy[self.state_index(cell)])])
                elif cell == self.start:
                    row.append("S")
                else:
                    row.append(".")
            lines.append("".join(row))
        return "\n".join(lines)
