"""A runner's liveness: a heartbeat that renews what it holds, and hearing that its worker must stop.

Heartbeat: a runner holds ledger rows (their leases) and places in Redis semaphores (its runner
slot, a relay connection). A thread of its own renews them every DELIVERY_HEARTBEAT_SECONDS (at
most a third of DELIVERY_LEASE_SECONDS), so a runner blocked in an SMTP read or a rate-limit wait
keeps them, and a killed worker's rows and slots are free DELIVERY_LEASE_SECONDS after its last
renewal (20 s by default) instead of after one long lease. A runner whose main loop has made no
progress for longer than an SMTP timeout and a lease together is stuck: the heartbeat stops renewing
so the watchdog can give its rows to others.

Stopping: Celery's warm shutdown (SIGTERM, `docker stop`) waits for the running task, and a
runner's turn lasts up to DELIVERY_TASK_SECONDS, longer than Docker's grace period. The worker's
main process hears the signal (worker_shutting_down) and raises a flag here and in Redis under its
node name, which runners read between messages whatever the pool (solo: the same process; prefork:
a child). They then stop claiming, finish what is on the wire, hand back the rest and release their
slots. A worker that starts under the same name clears the flag (worker_ready).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings

from mailplatform.redis_cache import redis_client, redis_key

log = logging.getLogger(__name__)

_stopping = threading.Event()


def _stop_key(hostname: str) -> str:
    return redis_key("delivery", "worker-stopping", hostname)


_exit_code: list[int] = []


def worker_shutting_down(sender: object = None, **kwargs: object) -> None:
    """Celery's worker_shutting_down receiver (the worker's main process, inside the signal handler)."""
    _stopping.set()
    _exit_code[:] = [int(kwargs.get("exitcode") or 0)]
    log.warning("worker %s is stopping: its send runners hand back their batches", sender)
    if sender:
        try:
            redis_client().set(_stop_key(str(sender)), "1", ex=3600)
        except Exception:  # a signal handler must not raise; the local flag still serves the solo pool
            log.exception("could not tell the runners in Redis that worker %s is stopping", sender)


def worker_ready(sender: object = None, **kwargs: object) -> None:
    """Celery's worker_ready receiver: a worker (re)started under this name is not stopping."""
    _stopping.clear()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        redis_client().delete(_stop_key(str(hostname)))


def stopping_here() -> bool:
    """This process's worker was asked to stop (the solo pool's runner hears it at once; no Redis call)."""
    return _stopping.is_set()


def stop_requested(hostname: str | None) -> bool:
    """Whether the worker running this runner was asked to stop."""
    if _stopping.is_set():
        return True
    return bool(hostname) and bool(redis_client().exists(_stop_key(str(hostname))))


def heartbeat_seconds() -> float:
    return max(0.2, min(float(settings.DELIVERY_HEARTBEAT_SECONDS), settings.DELIVERY_LEASE_SECONDS / 3))


class Heartbeat(threading.Thread):
    """Calls `renew` every heartbeat from its own thread (and its own database connection).

    The runner calls `progress()` as it works; after `stuck_after` seconds without progress the
    heartbeat stops renewing (the runner is stuck, not slow) and what it holds expires.
    """

    def __init__(self, renew: Callable[[], None], *, stuck_after: float | None = None) -> None:
        super().__init__(name="delivery-heartbeat", daemon=True)
        self.renew = renew
        self.interval = heartbeat_seconds()
        self.stuck_after = (
            stuck_after
            if stuck_after is not None
            else 2 * settings.DELIVERY_SMTP_TIMEOUT + settings.DELIVERY_LEASE_SECONDS
        )
        self.last_progress = time.monotonic()
        self.renewals = 0
        self._done = threading.Event()

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    def run(self) -> None:
        from django.db import connection

        try:
            while not self._done.wait(self.interval):
                if time.monotonic() - self.last_progress > self.stuck_after:
                    log.warning(
                        "runner made no progress for %.0f s: no longer renewing its leases", self.stuck_after
                    )
                    continue
                try:
                    self.renew()
                    self.renewals += 1
                except Exception:
                    # A dropped database connection: the next beat reconnects. Never let one miss end it.
                    log.warning("heartbeat renewal failed; retrying at the next beat", exc_info=True)
                    connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        self._done.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(10)

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def exit_without_teardown() -> None:
    """An atexit hook (registered at start-up, so it runs after the hooks registered later): once a
    worker asked to stop has run every exit hook, leave without the interpreter's teardown.

    Measured here: a worker that has sent mail spends 4-8 s in that teardown (freeing the heap, no
    Python frame left to run) after Celery finished, which with a loaded host pushed a SIGTERM'd
    worker past Docker's grace period. Nothing of ours is left to do by then; logs are flushed first.
    """
    if not _stopping.is_set() or not _exit_code:
        return
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S110 - a closed stream at exit: nothing to flush
            pass
    os._exit(_exit_code[0])
