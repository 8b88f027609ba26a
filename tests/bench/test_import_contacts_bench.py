"""The import benchmark runs at a small size so it cannot rot; its figures are not asserted."""

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
def test_import_bench_runs_and_prints_json():
    env = dict(os.environ)
    params = connection.settings_dict
    if params["HOST"].startswith("/"):
        env["DATABASE_URL"] = f"postgresql://{params['USER']}@/postgres?host={params['HOST']}"
    else:
        auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
        env["DATABASE_URL"] = f"postgresql://{auth}@{params['HOST']}:{params['PORT'] or 5432}/postgres"
    # Another run on a shared server may hold a bench database of its own; only ours must go.
    before = set(_databases())
    done = subprocess.run(
        [sys.executable, "bench/import_contacts.py", "--rows", "3000"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["rows"] == 3000
    # The generator's mix: ~1% invalid, ~5% duplicates; every valid unique row is created once.
    assert 10 <= figures["invalid"] <= 60 and 80 <= figures["duplicates"] <= 250
    assert figures["created"] + figures["invalid"] + figures["duplicates"] == 3000
    assert figures["reimport_updated"] + figures["reimport_unchanged"] == figures["created"]
    for key in ("first_per_s", "reimport_per_s", "peak_rss_mb", "contacts_page_ms", "segment_count_ms"):
        assert figures[key] > 0
    left = set(_databases()) - before
    assert not any(name.startswith("posthorn_bench_import_") for name in left)


def _databases() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return [row[0] for row in cursor.fetchall()]
