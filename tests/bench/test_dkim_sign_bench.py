"""bench/dkim_sign.py runs at a small size and reports its figures against the bare RSA step."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_dkim_bench_small():
    result = subprocess.run(
        [sys.executable, "bench/dkim_sign.py", "--seconds", "0.05", "--rounds", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["message_bytes"] > 10_000
    assert figures["rsa_sign_per_s"] > 0 and figures["dkim_sign_per_s"] > 0
    assert abs(figures["dkim_ratio"] - figures["dkim_sign_per_s"] / figures["rsa_sign_per_s"]) < 0.01
    assert figures["dkim_cpu_us_per_msg"] > 0
