"""pytest-benchmark timings of oxinet's side of every comparison case.

``python -m pytest benches/python`` times oxinet alone, in this process; the
side-by-side comparison with peers is ``python -m oxinet bench``.
"""

import pytest

from oxinet.benchmarks.harness import load_cases

CASES = load_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(benchmark, name):
    fn = CASES[name].factory("oxinet")
    if fn is None:
        pytest.skip("no oxinet implementation")
    benchmark(fn)
