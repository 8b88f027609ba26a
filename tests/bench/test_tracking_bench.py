"""bench/tracking.py runs at a small size: gunicorn, a separate client process, the JSON line."""

from tests.bench.runner import run_bench, run_bench_refused


def test_tracking_bench_small():
    figures = run_bench("bench/tracking.py", "--requests", "50", "--threads", "2")
    assert figures["requests"] == 50 and figures["errors"] == 0, figures
    # Every open and click reached the ledger through the Redis buffer and the batch insert.
    assert figures["events_written"] == 100, figures
    for key in ("open_per_s", "click_per_s", "trivial_per_s", "open_p95_ms", "click_p95_ms"):
        assert figures[key] > 0
    assert abs(figures["open_ratio"] - figures["open_per_s"] / figures["trivial_per_s"]) < 0.01


def test_tracking_bench_refuses_a_bad_size():
    assert "--requests" in run_bench_refused("bench/tracking.py", "--requests", "0")
