"""bench/compose_tracking.py runs at a small size and compares tracking off and on."""

from tests.bench.runner import run_bench, run_bench_refused


def test_compose_tracking_bench_small():
    figures = run_bench("bench/compose_tracking.py", "--messages", "200", "--links", "5", timeout=120)
    assert figures["messages"] == 200 and figures["links"] == 5
    assert figures["plain_per_s"] > 0 and figures["tracked_per_s"] > 0
    assert abs(figures["ratio"] - figures["tracked_per_s"] / figures["plain_per_s"]) < 0.01


def test_compose_tracking_bench_refuses_a_bad_size():
    assert "--messages" in run_bench_refused("bench/compose_tracking.py", "--messages", "1")
