"""What every benchmark test does: run a bench/ script as a child process at a small size and read
its figures from the last line it prints (one JSON object, as every bench/ script promises)."""

import json
import os
import subprocess
import sys

from django.conf import settings
from django.db import connection

from tests.conftest import REPO_ROOT


def run_bench(script: str, *args: str, env: dict[str, str] | None = None, timeout: int = 300) -> dict:
    done = _run(script, args, env, timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_bench_refused(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs a script with arguments it must refuse; returns what it said on stderr."""
    done = _run(script, args, env, 60)
    assert done.returncode != 0, done.stdout[-2000:]
    return done.stderr


def worker_env() -> dict[str, str]:
    """For scripts that start real workers: they make (and drop) a database of their own on the
    test's server, use the test's Redis, and choose their own settings module."""
    env = dict(os.environ)
    env.setdefault("REDIS_URL", settings.REDIS_URL)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def server_env() -> dict[str, str]:
    """For scripts that make a database of their own next to the test database (needs django_db)."""
    params = connection.settings_dict
    env = dict(os.environ)
    if params["HOST"].startswith("/"):
        env["DATABASE_URL"] = f"postgresql://{params['USER']}@/postgres?host={params['HOST']}"
    else:
        auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
        env["DATABASE_URL"] = f"postgresql://{auth}@{params['HOST']}:{params['PORT'] or 5432}/postgres"
    return env


def server_databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


def _run(
    script: str, args: tuple[str, ...], env: dict[str, str] | None, timeout: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
