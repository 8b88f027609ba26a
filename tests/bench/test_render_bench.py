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
    # The 10-block document: MJML compile time, and the builder with a 100 KB attachment vs without.
    assert 0 < figures["mjml_compile_ms"] < figures["blocks_compile_ms"]
    assert figures["attachment_message_bytes"] > 100 * 1024 * 4 // 3
    # The target is >= 0.5 (measured ~1.0: the encoded file is appended, not re-encoded or scanned);
    # a small run on a shared machine is noisy, so the suite only catches a gross regression.
    assert figures["attachment_ratio"] > 0.3


def test_render_bench_refuses_a_bad_size():
    result = subprocess.run(
        [sys.executable, "bench/render.py", "--messages", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "--messages" in result.stderr
