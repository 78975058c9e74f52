"""The one place where the data package turns a ``seed`` argument into a generator.

Rules used by every loader, split and transform in :mod:`oxinet.data`:

* ``seed=None`` draws from oxinet's shared generator (``oxinet.random.generator()``,
  reseeded by ``oxinet.manual_seed(n)``), fetched afresh at every draw so that a
  ``manual_seed`` call made after construction still takes effect. If that module is not
  available, a fresh OS-seeded NumPy generator is used.
* an ``int`` (or ``numpy.random.SeedSequence``) gives the object its own private
  ``numpy.random.Generator``, created once: repeated epochs/calls differ from each other,
  but the whole sequence repeats exactly for the same seed.
* a ``numpy.random.Generator`` is used as is (shared with the caller).
"""

from __future__ import annotations

import operator

import numpy as np


def shared_generator() -> np.random.Generator:
    """oxinet's project-wide generator, or a fresh OS-seeded one when it does not exist."""
    try:
        from oxinet import random as _random  # provided by the autograd/nn layer
    except ImportError:
        return np.random.default_rng()
    gen = getattr(_random, "generator", None)
    if gen is None:
        return np.random.default_rng()
    return gen()


def check_seed(seed, who: str):
    """Validate a ``seed=`` argument: None, a non-negative int, a SeedSequence or a Generator."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, bool):
        raise TypeError(f"{who}: 'seed' must be an int, a numpy Generator or None, got bool")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(
            f"{who}: 'seed' must be an int, a numpy Generator or None, got {type(seed).__name__}"
        ) from None
    if seed < 0:
        raise ValueError(f"{who}: 'seed' must be >= 0, got {seed}")
    return seed


class SeedSource:
    """Holds a ``seed=`` argument and hands out the generator to draw from (see module doc)."""

    __slots__ = ("seed", "_gen")

    def __init__(self, seed, who: str):
        self.seed = check_seed(seed, who)
        if self.seed is None:
            self._gen = None
        elif isinstance(self.seed, np.random.Generator):
            self._gen = self.seed
        else:
            self._gen = np.random.default_rng(self.seed)

    def generator(self) -> np.random.Generator:
        return shared_generator() if self._gen is None else self._gen

    def reseed(self, seed, who: str) -> None:
        self.__init__(seed, who)


def make_generator(seed, who: str) -> np.random.Generator:
    """A generator for a one-shot use (splits, dataset generators)."""
    return SeedSource(seed, who).generator()
