"""The engagement segment benchmark runs at a small size so it cannot rot; its timings are not asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.django_db
def test_engagement_bench_runs_and_prints_json():
    env = dict(os.environ)
    params = connection.settings_dict
    if params["HOST"].startswith("/"):
        env["DATABASE_URL"] = f"postgresql://{params['USER']}@/postgres?host={params['HOST']}"
    else:
        auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
        env["DATABASE_URL"] = f"postgresql://{auth}@{params['HOST']}:{params['PORT'] or 5432}/postgres"
    before = set(_databases())
    done = subprocess.run(
        [sys.executable, "bench/engagement.py", "--contacts", "2000"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["contacts"] == 2000 and figures["engagement_rows"] == 16000
    # ~10 events per contact: 8 received, ~1.3 opened, ~0.3 clicked, ~0.4 machine opens.
    assert 18000 <= figures["events"] <= 22000
    # Who matches follows from the generator's draws: clickers are a subset of openers, and the
    # resend audience (received the latest, no human open) is ~84% of the contacts.
    assert 0 < figures["engagement_matched"] < figures["recent_matched"]
    assert 1500 <= figures["resend_matched"] <= 1850
    assert figures["machine_matched"] > figures["engagement_matched"]
    for key in ("engagement_count_ms", "resend_count_ms", "recent_count_ms", "machine_count_ms"):
        assert figures[key] > 0
    # Another run on a shared server may hold a bench database of its own; only ours must go.
    left = set(_databases()) - before
    assert not any(name.startswith("posthorn_bench_engagement_") for name in left)


def _databases() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return [row[0] for row in cursor.fetchall()]
