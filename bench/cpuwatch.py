"""User + system CPU of groups of processes over a stretch of a benchmark, processes that come and go included.

A group is a function returning the pids that belong to it right now (a worker and its children,
the PostgreSQL backends of one database, a Redis server). A thread samples each group's processes
every `interval` seconds: a process seen at the start counts from its reading then, one born
during the stretch from zero, and each counts up to its last reading. What a process that exits
used after its last sample is lost (at most `interval` of one process's CPU).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import psutil

PidSource = Callable[[], Iterable[int]]


def cpu_seconds(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return times.user + times.system


def with_children(pids: Iterable[int]) -> list[int]:
    """The processes and their descendants (a prefork pool's children)."""
    out: list[int] = []
    for pid in pids:
        try:
            out += [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            continue
    return out


def postgres_backends(backend_pid: int, database: str, exclude: Iterable[int] = ()) -> PidSource:
    """The server processes serving `database`, found through the parent of one of its backends
    (`SELECT pg_backend_pid()`) and the process titles ("postgres: ... <user> <database> <host>");
    none when the server is not on this host."""
    try:
        postmaster = psutil.Process(backend_pid).parent()
    except psutil.NoSuchProcess:
        postmaster = None
    skip = set(exclude)

    def pids() -> list[int]:
        if postmaster is None:
            return []
        found = []
        try:
            children = postmaster.children()
        except psutil.NoSuchProcess:
            return []
        for child in children:
            try:
                title = " ".join(child.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if child.pid not in skip and f" {database} " in f" {title} ":
                found.append(child.pid)
        return found

    return pids


class CpuWatch:
    """Samples groups of processes from `start()` to `stop()`; `seconds()` is CPU seconds per group."""

    def __init__(self, groups: dict[str, PidSource], interval: float = 0.1) -> None:
        self.groups = groups
        self.interval = interval
        # group -> pid -> (baseline, last reading)
        self._readings: dict[str, dict[int, list[float]]] = {name: {} for name in groups}
        self._started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="cpuwatch")

    def _sample(self) -> None:
        for name, source in self.groups.items():
            readings = self._readings[name]
            for pid in source():
                now = cpu_seconds(pid)
                if now is None:
                    continue
                if pid not in readings:
                    try:
                        born = psutil.Process(pid).create_time()
                    except psutil.NoSuchProcess:
                        continue
                    # Born during the stretch: everything it used is the stretch's.
                    readings[pid] = [0.0 if born > self._started else now, now]
                else:
                    readings[pid][1] = now

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> CpuWatch:
        # psutil's create_time is rounded to the clock tick: a process started in the same tick
        # as the stretch counts from its first reading (a few ms lost at most).
        self._started = time.time()
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.seconds()

    def seconds(self) -> dict[str, float]:
        return {
            name: sum(last - base for base, last in readings.values())
            for name, readings in self._readings.items()
        }

    def processes(self) -> dict[str, int]:
        return {name: len(readings) for name, readings in self._readings.items()}
