"""bench/faults.py runs at a small size: three strikes on one mailing, every message counted at the sink."""

import pytest

from tests.bench.runner import run_bench, worker_env

pytestmark = pytest.mark.slow


def test_faults_bench_small():
    figures = run_bench(
        # Scaled-down leases keep it quick; the note's figures use the production settings.
        "bench/faults.py", "--messages", "2000", "--rate", "200",
        "--lease", "4", "--heartbeat", "1", "--watchdog", "1",
        env=worker_env(),
        timeout=600,
    )  # fmt: skip
    assert figures["messages"] == 2000 and figures["finished"]
    assert figures["missing"] == 0 and figures["duplicates_unnamed"] == 0
    assert figures["kill_all_resumed_after_restart_s"] <= 30
    assert figures["kill_one_longest_pause_s"] <= 30
    assert 0 <= figures["sigterm_exit_s"] <= 10
