"""Only one effective beat, however many are started: a leader lock in Redis renewed by heartbeat.

Every beat process runs this scheduler (settings.CELERY_BEAT_SCHEDULER). Before each tick it takes
or renews one Redis key holding its token for BEAT_LOCK_SECONDS (15 s); only the holder sends due
tasks, the others stand by and try again every few seconds. A beat that dies stops renewing, so its
key expires within BEAT_LOCK_SECONDS and a standby takes over on its next try (every second); a beat that stops
cleanly deletes its key and is replaced at once. Ticks are at most a third of the lock's life apart,
so a live leader renews at least twice before its key could expire.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from celery.beat import PersistentScheduler
from django.conf import settings

from mailplatform.redis_cache import redis_client, redis_key

log = logging.getLogger(__name__)

# Take the key if free, renew it if ours; 1 when we hold it after the call, else 0.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Delete the key only if it is still ours (a standby may hold it already).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# A standby asks every second (one Redis call), so it leads within a second of the key expiring.
STANDBY_RETRY_SECONDS = 1.0


def lock_key() -> str:
    return redis_key("beat", "leader")


class BeatLock:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: bool | None = None  # unknown until the first try, which is always logged

    def hold(self) -> bool:
        """Take or renew the lock; False (and no exception) when Redis cannot be reached."""
        try:
            held = bool(redis_client().eval(_HOLD, 1, lock_key(), self.token, self.ttl_ms))
        except Exception as exc:
            # Not knowing is not holding: a leader cut off from Redis stops sending before its key expires.
            log.warning("beat lock: Redis unreachable (%s); not sending", exc)
            held = False
        if held != self.held:
            log.info(
                "beat lock: %s (%s)", "leading, sending due tasks" if held else "standing by", self.token
            )
        self.held = held
        return held

    def release(self) -> None:
        try:
            redis_client().eval(_RELEASE, 1, lock_key(), self.token)
        except Exception:
            pass  # it expires on its own
        self.held = False


def current_leader() -> str | None:
    value = redis_client().get(lock_key())
    return value.decode() if value else None


class SingleBeatScheduler(PersistentScheduler):
    """celery.beat's persistent scheduler that sends only while it holds the leader lock."""

    def __init__(self, *args, **kwargs) -> None:
        self.beat_lock = BeatLock(settings.BEAT_LOCK_SECONDS)
        super().__init__(*args, **kwargs)

    @property
    def _renew_every(self) -> float:
        return settings.BEAT_LOCK_SECONDS / 3

    def tick(self, *args, **kwargs) -> float:
        if not self.beat_lock.hold():
            return STANDBY_RETRY_SECONDS
        return min(super().tick(*args, **kwargs), self._renew_every)

    def close(self) -> None:
        self.beat_lock.release()
        super().close()
