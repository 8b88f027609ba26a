"""bench/render.py runs at a small size and reports both paths."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_render_bench_small():
    result = subprocess.run(
        [sys.executable, "bench/render.py", "--messages", "300"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["messages"] == 300 and figures["full_messages"] == 300
    assert figures["fast_per_s"] > 0 and figures["full_per_s"] > 0
    assert abs(figures["ratio"] - figures["fast_per_s"] / figures["full_per_s"]) < 0.05


def test_render_bench_refuses_a_bad_size():
    result = subprocess.run(
        [sys.executable, "bench/render.py", "--messages", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "--messages" in result.stderr
