"""Runners: how many `send_mailing` tasks work one Mailing, starting them and handing over.

A runner holds a place in its Mailing's semaphore (ratelimit.Semaphore in Redis, DELIVERY_PARALLEL
places) for as long as it works; the place is named by the runner's token, which a successor
inherits on hand-over. The mailing and transactional services call `dispatch`, the tasks call
`handover`, the engine holds the place (`semaphore`) while it sends. Tasks are enqueued by name,
so this module does not import delivery.tasks (which imports the engine, which imports this).
"""

from __future__ import annotations

import secrets

from celery import current_app
from django.conf import settings

from delivery import ratelimit, relays
from mailplatform.redis_cache import redis_key

SEND_TASK = "delivery.tasks.send_mailing"


def _key(mailing_id: int) -> str:
    return redis_key("delivery", "mailing", mailing_id, "runners")


def semaphore(mailing_id: int, token: str, *, lease: float, limit: int | None = None) -> ratelimit.Semaphore:
    """The runner `token`'s place among the Mailing's runners."""
    return ratelimit.Semaphore(
        _key(mailing_id), settings.DELIVERY_PARALLEL if limit is None else limit, lease, token=token
    )


def _queued_lease() -> float:
    # A queued task holds its place for one lease, so the watchdog does not queue more meanwhile;
    # one that never starts (a killed worker had prefetched it) frees the place when this runs out,
    # as a dead runner's does. One that starts later re-takes a place if there is room, or exits.
    return settings.DELIVERY_LEASE_SECONDS


def _enqueue(mailing_id: int, token: str) -> None:
    current_app.send_task(SEND_TASK, args=[mailing_id, token])


def dispatch(mailing_id: int) -> int:
    """Enqueue runners for a Mailing up to DELIVERY_PARALLEL (fewer when its relays allow fewer)."""
    connections = sum(r.max_connections for r in relays.pool(mailing_id)) or 1
    wanted = min(settings.DELIVERY_PARALLEL, connections)
    started = 0
    for _ in range(wanted):
        token = secrets.token_hex(8)
        if semaphore(mailing_id, token, lease=_queued_lease(), limit=wanted).acquire() != 0.0:
            break
        _enqueue(mailing_id, token)
        started += 1
    return started


def handover(mailing_id: int, token: str) -> None:
    """A runner out of time queues its successor, which keeps its place while it waits in the queue."""
    if semaphore(mailing_id, token, lease=_queued_lease()).refresh():
        _enqueue(mailing_id, token)
