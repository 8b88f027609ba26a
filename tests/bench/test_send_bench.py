"""bench/send.py runs at a small size: everything sent, counted at the sink, nothing lost or doubled."""

import pytest

from tests.bench.runner import run_bench, run_bench_refused, worker_env

pytestmark = pytest.mark.slow


def test_send_bench_small():
    figures = run_bench("bench/send.py", "--messages", "300", env=worker_env())
    assert figures["messages"] == 300 and figures["sent"] == 300
    assert figures["received"] == 300 and figures["duplicates"] == 0 and figures["missing"] == 0
    assert figures["msgs_per_s"] > 0 and figures["smtp_source_per_s"] > 0 and figures["dkim_sign_per_s"] > 0
    assert abs(figures["ratio"] - figures["msgs_per_s"] / figures["smtp_source_per_s"]) < 0.01
    assert figures["worker_cpu_ms_per_message"] > 0 and figures["messages_per_hour_per_process"] > 0
    # Against the wire: a second send into a sink without a dump, which counts what it gets.
    assert figures["wire_sent"] == 300 and figures["wire_received"] == 300
    assert figures["wire_msgs_per_s"] > 0 and figures["smtp_source_no_dump_per_s"] > 0
    assert (
        abs(figures["wire_ratio"] - figures["wire_msgs_per_s"] / figures["smtp_source_no_dump_per_s"]) < 0.01
    )
    # The CPU of the workers, of the database's backends (the test server runs on this host) and
    # of the run's own Redis, per message, and their sum.
    # /proc counts CPU in 10 ms ticks: 300 messages' database backends may not reach one each (a
    # quiet CI run measured 0.0), so only the workers' share must show; the full-size run has them all.
    parts = [figures[f"cpu_us_per_msg_{name}"] for name in ("workers", "postgres", "redis")]
    assert parts[0] > 0 and min(parts) >= 0, figures
    assert abs(figures["cpu_us_per_msg"] - sum(parts)) < 0.5


def test_send_bench_no_dump_only_sends_against_the_wire():
    figures = run_bench("bench/send.py", "--no-dump", "--messages", "200", env=worker_env())
    assert figures["received"] == figures["duplicates"] == figures["missing"] == -1
    assert figures["sent"] == figures["wire_sent"] == figures["wire_received"] == 200
    assert figures["wire_ratio"] > 0 and figures["cpu_us_per_msg"] > 0


def test_send_bench_refuses_a_bad_size():
    assert "--messages" in run_bench_refused("bench/send.py", "--messages", "0", env=worker_env())


def test_send_bench_domains_small():
    """--domains: two runs over 20 receiving domains, one limited; nothing lost or doubled."""
    figures = run_bench("bench/send.py", "--domains", "--messages", "600", "--limit", "10", env=worker_env())
    assert figures["sent"] == 600 and figures["received"] == 600
    assert figures["duplicates"] == 0 and figures["missing"] == 0
    assert figures["limited_sent"] == 30 and figures["limit_per_s"] == 10
    # 20 at 10/s after a burst of 10: small and noisy here; the full-size figures are in the note
    assert 5 <= figures["limited_per_s"] <= 15, figures
    assert figures["others_ratio"] > 0
