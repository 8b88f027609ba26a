"""The fault harness: a sink that counts every delivered Message-ID, and real worker processes to strike.

Used by tests/delivery/test_faults.py and bench/faults.py. Nothing here sleeps a fixed time to
wait for something: `wait_for` polls a condition until a deadline.

- `CountingSink`: aiosmtpd on a free loopback port. Every message it accepts is counted by the
  ledger id in its Message-ID (`<token.<message id>@domain>`), with its arrival time, so duplicates,
  missing messages and pauses in the flow are exact.
- `Fleet`: Celery workers (and a beat) started as processes on the current database and Redis,
  killed with SIGKILL or SIGTERM and started again; `terminate_connections` ends their database
  sessions with pg_terminate_backend.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailplatform.devstack import celery_command
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer

REPO = Path(__file__).resolve().parents[2]
# The ledger id at the end of the Message-ID's local part (delivery.compose.MessageBuilder.message_id_header).
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<[^<>@]*\.(\d+)@", re.IGNORECASE | re.MULTILINE)
# Workers' database sessions carry this application name, so a test ends theirs and not its own.
WORKER_APPLICATION_NAME = "posthorn-fault-worker"


def wait_for(predicate: Callable[[], bool], timeout: float, *, every: float = 0.1) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


@dataclass
class CountingHandler(RecordingHandler):
    """Accepts everything (unless a hook refuses) and keeps only counts and arrival times, not content."""

    counts: Counter = field(default_factory=Counter)
    arrivals: list[float] = field(default_factory=list)
    unparsed: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        reply = self.data_reply(envelope)
        if reply:
            return reply
        content = envelope.original_content or b""
        headers = content.split(b"\r\n\r\n", 1)[0]
        match = _MESSAGE_ID.search(headers)
        with self.lock:
            if match is None:
                self.unparsed += 1
            else:
                self.counts[int(match.group(1))] += len(envelope.rcpt_tos)
            self.arrivals.append(time.monotonic())
        return "250 2.0.0 OK queued"


class CountingSink(SmtpServer):
    """`with CountingSink() as sink:` then sink.port, sink.total, sink.duplicates()..."""

    def __init__(self, handler: CountingHandler | None = None) -> None:
        super().__init__(handler or CountingHandler())
        self.handler: CountingHandler

    @property
    def total(self) -> int:
        with self.handler.lock:
            return len(self.handler.arrivals)

    def counts(self) -> Counter:
        with self.handler.lock:
            return Counter(self.handler.counts)

    def duplicates(self) -> set[int]:
        return {key for key, count in self.counts().items() if count > 1}

    def arrivals(self) -> list[float]:
        with self.handler.lock:
            return list(self.handler.arrivals)

    def first_arrival_after(self, moment: float) -> float | None:
        return next((t for t in self.arrivals() if t > moment), None)

    def longest_pause(self, start: float, end: float | None = None) -> float:
        """The longest time without a delivery between `start` and `end` (or the last delivery)."""
        times = [t for t in self.arrivals() if t >= start and (end is None or t <= end)]
        points = [start, *times] + ([end] if end is not None else [])
        return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)


def database_url() -> str:
    """A URL to the database this process uses now (the test database in tests, the bench's own in bench)."""
    from django.db import connection

    params = connection.settings_dict
    query = f"?host={params['HOST']}" if params["HOST"].startswith("/") else ""
    host = "" if query else f"{params['HOST']}:{params['PORT'] or 5432}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    return f"postgresql://{auth}@{host}/{params['NAME']}{query}"


class Fleet:
    """Celery worker and beat processes on this process's database and Redis, to start and strike."""

    def __init__(self, env: dict[str, str], *, queues: str = "sending", settings_module: str = "") -> None:
        from django.conf import settings

        self.queues = queues
        self.env = {
            **os.environ,
            **env,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DJANGO_SETTINGS_MODULE": settings_module or os.environ.get("DJANGO_SETTINGS_MODULE", ""),
            "PYTHONUNBUFFERED": "1",
            # libpq reads it: the workers' sessions are told apart from the test's own.
            "PGAPPNAME": WORKER_APPLICATION_NAME,
        }
        self.workers: dict[str, subprocess.Popen] = {}
        self.beat: subprocess.Popen | None = None
        self._schedule_dir = tempfile.TemporaryDirectory(prefix="posthorn-beat-")
        self._count = 0

    def start_worker(self, *, wait: float = 60) -> str:
        """Start one worker; returns its name once it answers a ping."""
        from mailplatform.celery import app

        self._count += 1
        name = f"fault{self._count}-{os.getpid()}-{time.monotonic_ns()}"
        process = subprocess.Popen(
            celery_command("worker", "-l", os.environ.get("FAULT_WORKER_LOG", "WARNING"), "-P", "solo",
             "-Q", self.queues, "-n", f"{name}@%h", "--without-gossip", "--without-mingle"),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.workers[name] = process
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=0.5) or []
            if any(name in key for reply in replies for key in reply):
                return name
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited at start-up with {process.returncode}")
        self.stop_all()
        raise RuntimeError(f"worker {name} did not answer within {wait:g} s")

    def start_beat(self) -> None:
        schedule = Path(self._schedule_dir.name) / f"beat-{self._count}"
        self._count += 1
        self.beat = subprocess.Popen(
            celery_command("beat", "-l", "WARNING", "-s", str(schedule)),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def alive(self) -> list[str]:
        return [name for name, process in self.workers.items() if process.poll() is None]

    def kill(self, name: str) -> None:
        """kill -9: no chance to hand anything back."""
        process = self.workers[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def kill_all(self) -> None:
        for name in self.alive():
            self.workers[name].send_signal(signal.SIGKILL)
        if self.beat is not None and self.beat.poll() is None:
            self.beat.send_signal(signal.SIGKILL)
        for process in [*self.workers.values(), *([self.beat] if self.beat else [])]:
            process.wait(10)

    def terminate(self, name: str) -> None:
        """SIGTERM, as `docker stop` sends: a warm shutdown. Returns at once; see `exited_within`."""
        self.workers[name].send_signal(signal.SIGTERM)

    def exited_within(self, name: str, seconds: float) -> float | None:
        """Seconds until the worker exited, or None if it is still running after `seconds`."""
        start = time.monotonic()
        try:
            self.workers[name].wait(seconds)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - start

    def stop_all(self) -> None:
        processes = [p for p in [*self.workers.values(), self.beat] if p is not None and p.poll() is None]
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._schedule_dir.cleanup()


def terminate_connections() -> int:
    """pg_terminate_backend on every database session of the workers; how many were ended."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()",
            [WORKER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


class Striker(threading.Thread):
    """Runs `action` repeatedly in the background (e.g. terminate_connections every half second)."""

    def __init__(self, action: Callable[[], object], every: float, times: int) -> None:
        super().__init__(daemon=True)
        self.action, self.every, self.times = action, every, times
        self.results: list[object] = []
        self._halt = threading.Event()

    def run(self) -> None:
        from django.db import connections

        try:
            for _ in range(self.times):
                if self._halt.wait(self.every):
                    return
                self.results.append(self.action())
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
