"""bench/api.py runs at a small size and reports its figures."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_api_bench_small():
    result = subprocess.run(
        [
            sys.executable,
            "bench/api.py",
            "--contacts",
            "1000",
            "--pages",
            "4",
            "--batch",
            "300",
            "--batches",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["contacts"] == 1000 and figures["pages"] == 4
    assert figures["bulk_rows"] == 600 and figures["bulk_created"] == 300 and figures["bulk_updated"] == 300
    # The reference run and the alternating rows-entry / file runs each add their own new ones.
    assert figures["contacts_after"] == 1000 + 300 + 300 + 300 + 300
    assert figures["list_p50_ms"] > 0 and figures["list_p95_ms"] >= figures["list_p50_ms"]
    assert figures["bulk_upsert_per_s"] > 0 and figures["import_service_per_s"] > 0
    assert figures["bulk_rows_entry_per_s"] > 0 and figures["import_file_alternating_per_s"] > 0
    assert figures["bulk_rows_entry_cpu_us_per_row"] > 0


def test_api_bench_refuses_a_bad_size():
    result = subprocess.run(
        [sys.executable, "bench/api.py", "--batch", "20000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "--batch" in result.stderr
