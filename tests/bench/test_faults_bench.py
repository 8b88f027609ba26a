"""bench/faults.py runs at a small size: three strikes on one mailing, every message counted at the sink."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_faults_bench_small():
    env = dict(os.environ)
    # The bench makes (and drops) a database of its own on the same server, and uses this Redis.
    env.setdefault("REDIS_URL", settings.REDIS_URL)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        # Scaled-down leases keep it quick; the note's figures use the production settings.
        [sys.executable, "bench/faults.py", "--messages", "2000", "--rate", "200",
         "--lease", "4", "--heartbeat", "1", "--watchdog", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["messages"] == 2000 and figures["finished"]
    assert figures["missing"] == 0 and figures["duplicates_unnamed"] == 0
    assert figures["kill_all_resumed_after_restart_s"] <= 30
    assert figures["kill_one_longest_pause_s"] <= 30
    assert 0 <= figures["sigterm_exit_s"] <= 10
