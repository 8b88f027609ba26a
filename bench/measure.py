"""What several benchmarks measure the same way: a median time, and the import benchmark's
three-condition segment (bench/scale.py counts the very same one at sizes no import reaches)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def own_cpu_s() -> float:
    """User + system CPU seconds of this process and of the children it waited for (a file
    import's reading process, which it forks)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def backend_pid() -> int:
    """The PostgreSQL server process of this thread's Django connection (whose CPU
    cpuwatch.cpu_seconds reads, when the server runs on this host)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def three_condition_segment(list_id: int | None) -> dict[str, Any]:
    """A custom field over a value, on a list, a name's first letter: the segment item 4 of
    issue #18 measures."""
    return {
        "match": "all",
        "groups": [
            {
                "match": "all",
                "conditions": [
                    {"field": "attr:score", "op": "gt", "value": "50"},
                    {"field": "list", "op": "in", "value": list_id},
                    {"field": "first_name", "op": "starts_with", "value": "a"},
                ],
            }
        ],
    }
