"""bench/automations.py runs at a small size: every transition made, one ledger row per run and
send step, every mail at the sink once, the campaign comparison measured."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("REDIS_URL", settings.REDIS_URL)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def test_automations_bench_small():
    result = subprocess.run(
        [sys.executable, "bench/automations.py", "--contacts", "200"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["contacts"] == 200 and figures["transitions"] == 4 * 200
    assert figures["sends"] == 400 and figures["ledger_rows"] == figures["ledger_keys"] == 400
    assert figures["received"] == 600 and figures["duplicates"] == 0 and figures["missing"] == 0
    assert (
        figures["transitions_per_s"] > 0
        and figures["sends_per_s"] > 0
        and figures["campaign_sends_per_s"] > 0
    )
    assert abs(figures["ratio"] - figures["sends_per_s"] / figures["campaign_sends_per_s"]) < 0.01


def test_automations_bench_refuses_a_bad_size():
    result = subprocess.run(
        [sys.executable, "bench/automations.py", "--contacts", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode != 0 and "--contacts" in result.stderr
