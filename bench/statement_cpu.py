"""Run a Celery worker that records the PostgreSQL backend CPU of each statement it executes.

python bench/statement_cpu.py OUT.json -A mailplatform worker ... (bench/send.py --statements DIR).

pg_stat_statements needs the server restarted with it preloaded; this needs nothing on the
server: around every statement Django executes it reads the backend's /proc/<pid>/schedstat
(nanoseconds on a CPU, user and system together) when the server runs on this host, and at exit
writes, per statement shape (the SQL with its VALUES lists and whitespace collapsed), the count,
the backend's CPU and the wall time seen from the worker. COMMITs are not statements Django
executes: their cost is in the backend total only.
"""

from __future__ import annotations

import atexit
import json
import re
import sys
import time
from pathlib import Path

_SHAPE = re.compile(r"\(\s*%s(?:\s*,\s*%s)*\s*\)(?:\s*,\s*\(\s*%s(?:\s*,\s*%s)*\s*\))*")
_SPACE = re.compile(r"\s+")


def shape(sql: str) -> str:
    return _SPACE.sub(" ", _SHAPE.sub("(...)", sql)).strip()[:160]


def _schedstat(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def install(out: Path) -> None:
    from django.db.backends.signals import connection_created

    totals: dict[str, list[float]] = {}

    def wrapper(execute, sql, params, many, context):
        connection = context["connection"].connection
        pid = getattr(getattr(connection, "info", None), "backend_pid", 0) if connection else 0
        cpu, wall = _schedstat(pid), time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = totals.setdefault(shape(sql), [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += (_schedstat(pid) - cpu) / 1e9 if pid else 0.0
            entry[2] += time.perf_counter() - wall

    def on_connect(sender, connection, **kwargs):
        if wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(wrapper)

    connection_created.connect(on_connect, weak=False)

    def dump(**kwargs: object) -> None:
        rows = sorted(
            ({"sql": k, "calls": v[0], "backend_cpu_s": v[1], "wall_s": v[2]} for k, v in totals.items()),
            key=lambda row: -row["backend_cpu_s"],
        )
        out.write_text(json.dumps(rows, indent=1))

    # At the worker's shutdown: delivery.liveness leaves a stopping worker with os._exit from an
    # atexit hook registered before this one could be.
    from celery.signals import worker_shutdown

    worker_shutdown.connect(dump, weak=False)
    atexit.register(dump)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    install(Path(sys.argv[1]))
    import django

    django.setup()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[2:]]
    sys.exit(main())
