"""The side-by-side benchmark harness: contenders in their own processes, peer selection."""

from oxinet.benchmarks.harness import compare, format_row, load_cases

CASE = "sgemm small M32 N128 K1024"


def test_case_is_registered_with_a_numpy_peer():
    c = load_cases()[CASE]
    assert c.contenders[0] == "oxinet" and "numpy" in c.contenders


def test_compare_times_oxinet_and_skips_unselected_peers():
    (row,) = compare([CASE], rounds=1, min_time=0.01, peers=set())
    assert row.seconds["oxinet"] > 0
    assert row.seconds["numpy"] is None and row.notes["numpy"] == "not selected"
    assert "numpy n/a" in format_row(row)


def test_compare_times_a_selected_peer():
    (row,) = compare([CASE], rounds=1, min_time=0.01, peers={"numpy"})
    assert row.seconds["numpy"] > 0 and row.ratio("numpy") > 0


def test_item_rates_use_si_prefixes():
    from oxinet.benchmarks.harness import _rate

    c = load_cases()["generalized_box_iou 2000x2000"]
    assert c.flops is None and c.items == 4_000_000 and c.unit == "pairs"
    assert _rate(c, 4e-4) == "10.0 G pairs/s"
    assert _rate(c, 0.2) == "20.0 M pairs/s"
    assert _rate(c, 4.0) == "1000000 pairs/s"


def test_batch_norm_numpy_peer_matches_oxinet():
    import numpy as np

    import oxinet.ops as F
    from oxinet.benchmarks.cases_layers import _numpy_batch_norm_step

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 6))
    w, b = 1 + rng.standard_normal(3) * 0.1, rng.standard_normal(3)
    y, mean, invstd = F.batch_norm(x, weight=w, bias=b, training=True, return_stats=True)
    got = (y,) + tuple(F.batch_norm_backward(np.ones_like(y), x, mean, invstd, w, b, training=True))
    for a, e in zip(got, _numpy_batch_norm_step(x, w, b)):
        np.testing.assert_allclose(a, e, atol=1e-10)


def test_a_peer_can_run_under_another_interpreter(tmp_path, monkeypatch):
    import os
    import stat
    import sys

    marker = tmp_path / "used"
    wrapper = tmp_path / "other python"
    wrapper.write_text(f'#!/bin/sh\necho "$PYTHONPATH" > "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("OXINET_BENCH_PYTHON_NUMPY", f"'{wrapper}'")
    (row,) = compare([CASE], rounds=1, min_time=0.01, peers={"numpy"})
    assert row.seconds["numpy"] > 0
    import oxinet

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(oxinet.__file__)))
    assert marker.read_text().split(os.pathsep)[0].strip() == package_root


def test_oxinet_itself_keeps_this_interpreter(monkeypatch):
    import sys

    from oxinet.benchmarks.harness import interpreter

    monkeypatch.delenv("OXINET_BENCH_PYTHON_OXINET", raising=False)
    assert interpreter("oxinet") == ([sys.executable], {})
