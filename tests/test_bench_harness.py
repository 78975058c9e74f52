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
