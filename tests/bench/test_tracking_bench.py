"""bench/tracking.py runs at a small size: gunicorn, a separate client process, the JSON line."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_tracking_bench_small():
    result = subprocess.run(
        [sys.executable, "bench/tracking.py", "--requests", "50", "--threads", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["requests"] == 50 and figures["errors"] == 0, result.stdout
    # Every open and click reached the ledger through the Redis buffer and the batch insert.
    assert figures["events_written"] == 100, result.stdout
    for key in ("open_per_s", "click_per_s", "trivial_per_s", "open_p95_ms", "click_p95_ms"):
        assert figures[key] > 0
    assert abs(figures["open_ratio"] - figures["open_per_s"] / figures["trivial_per_s"]) < 0.01


def test_tracking_bench_refuses_a_bad_size():
    result = subprocess.run(
        [sys.executable, "bench/tracking.py", "--requests", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "--requests" in result.stderr
