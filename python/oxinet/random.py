"""oxinet's random number generator: one shared ``numpy.random.Generator``.

Weight initialisation, dropout masks, random factories (``randn``, ``rand``, ...) and data
shuffling all draw from :func:`generator`, so ``oxinet.manual_seed(n)`` makes a training
run repeatable.
"""

from __future__ import annotations

import operator

import numpy as np

_generator = np.random.default_rng()
_seed: int | None = None


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed oxinet's shared generator with the integer ``seed`` and return it."""
    global _generator, _seed
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(f"manual_seed: 'seed' must be an int, got {type(seed).__name__}") from None
    if seed < 0:
        raise ValueError(f"manual_seed: 'seed' must be >= 0, got {seed}")
    _seed = seed
    _generator = np.random.default_rng(seed)
    return _generator


def seed() -> int:
    """Seed the shared generator from the operating system's entropy; returns the seed."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    manual_seed(s)
    return s


def initial_seed() -> int | None:
    """The seed last given to :func:`manual_seed` (None if never seeded)."""
    return _seed


def generator() -> np.random.Generator:
    """The shared generator (replaced by each :func:`manual_seed`; fetch it each time)."""
    return _generator


def get_rng_state() -> dict:
    """The generator's state (a dict), for :func:`set_rng_state`."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
