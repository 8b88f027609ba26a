"""bench/compose_tracking.py runs at a small size and compares tracking off and on."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_compose_tracking_bench_small():
    result = subprocess.run(
        [sys.executable, "bench/compose_tracking.py", "--messages", "200", "--links", "5"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["messages"] == 200 and figures["links"] == 5
    assert figures["plain_per_s"] > 0 and figures["tracked_per_s"] > 0
    assert abs(figures["ratio"] - figures["tracked_per_s"] / figures["plain_per_s"]) < 0.01


def test_compose_tracking_bench_refuses_a_bad_size():
    result = subprocess.run(
        [sys.executable, "bench/compose_tracking.py", "--messages", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "--messages" in result.stderr
