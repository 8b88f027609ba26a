"""Worker heartbeats in Redis: what `manage.py worker_health` and the metrics read.

Each worker writes its node name and the time into one Redis hash every HEARTBEAT_SECONDS from a
timer on its own event loop (a worker whose loop is stuck stops beating, which is the point), and
removes itself when it stops. Reading is one HGETALL: no broker round trip, no worker asked.
"""

from __future__ import annotations

import logging
import time

from celery import bootsteps

from mailplatform.redis_cache import redis_client, redis_key

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
# A worker silent this long is forgotten by readers (it was killed without a clean stop).
FORGET_AFTER_SECONDS = 24 * 3600


def _key() -> str:
    return redis_key("workers", "heartbeat")


def heartbeat(node: str, *, now: float | None = None) -> None:
    redis_client().hset(_key(), node, f"{time.time() if now is None else now:.3f}")


def forget(node: str) -> None:
    redis_client().hdel(_key(), node)


def last_heartbeats() -> dict[str, float]:
    """{node name: unix time of its last heartbeat}, without nodes silent for a day (pruned here)."""
    client = redis_client()
    raw = client.hgetall(_key())
    now = time.time()
    beats, stale = {}, []
    for node, value in raw.items():
        node = node.decode()
        try:
            at = float(value)
        except ValueError:
            at = 0.0
        if now - at > FORGET_AFTER_SECONDS:
            stale.append(node)
        else:
            beats[node] = at
    if stale:
        client.hdel(_key(), *stale)
    return beats


class HeartbeatStep(bootsteps.StartStopStep):
    """Celery worker bootstep: beat on the worker's timer, forget the node on a clean stop."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        node = worker.hostname

        def beat() -> None:
            try:
                heartbeat(node)
            except Exception as exc:  # Redis away: the next beat tries again; health reads show the gap
                log.warning("worker heartbeat to Redis failed: %s", exc)

        beat()
        self.tref = worker.timer.call_repeatedly(HEARTBEAT_SECONDS, beat)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        try:
            forget(worker.hostname)
        except Exception:  # a worker stopping because Redis is gone still stops
            pass
