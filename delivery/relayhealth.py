"""Relay health, counted per relay across every runner on every host: one Lua script in Redis.

A relay that refuses connections or answers 421 is backed off so the others take its share.
Counted per relay, not per runner: when several runners hit the same broken relay at once, the
first failure backs it off and the others, finding it already backed off, add nothing (before,
each runner doubled the wait, and six refusals pushed the first delivery to 88 s). The wait is
base * 2^(failures-1) seconds, capped (DELIVERY_RELAY_BACKOFF_*), and shortened by a random part of
up to a half so runners on many hosts do not come back together. When it has passed the relay is
half-open: exactly one runner gets to try it (the probe); the others keep waiting until the probe
succeeds (the relay is healthy again at once) or fails (a longer wait). So a relay that recovers
is used again within seconds, and a relay refusing for minutes costs one connection attempt per
backoff, not one per runner.

The Relay row keeps the admin's view (last error, consecutive failures, backed off until); this
is what the engine decides by.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.conf import settings

from mailplatform.redis_cache import redis_client, redis_key

_SCRIPT = """
local key = KEYS[1]
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = tonumber(redis.call('HGET', key, 'until') or '0')
local failures = tonumber(redis.call('HGET', key, 'failures') or '0')

if op == 'check' then
  -- ARGV: op, probe seconds. Returns {state, seconds}: 1 usable, 2 usable as the probe, 0 wait.
  if until_ == 0 then return {1, '0'} end
  if now < until_ then return {0, tostring(until_ - now)} end
  local probe = tonumber(redis.call('HGET', key, 'probe') or '0')
  if probe > now then return {0, tostring(probe - now)} end
  redis.call('HSET', key, 'probe', tostring(now + tonumber(ARGV[2])))
  return {2, '0'}
elseif op == 'failure' then
  -- ARGV: op, base, cap, jitter in [0, 1), whether the caller held the probe.
  if until_ > now and ARGV[5] ~= '1' then
    return {failures, tostring(until_ - now), 0}
  end
  local probe = tonumber(redis.call('HGET', key, 'probe') or '0')
  if until_ > 0 and now >= until_ and probe > now and ARGV[5] ~= '1' then
    -- Someone else holds the probe: their verdict counts, not a runner that was already connected.
    return {failures, '0', 0}
  end
  failures = failures + 1
  local wait = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ math.min(failures - 1, 30))
  wait = wait * (1 - tonumber(ARGV[4]) / 2)
  redis.call('HSET', key, 'failures', failures, 'until', tostring(now + wait), 'probe', '0')
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[3]) * 4 + 3600))
  return {failures, tostring(wait), 1}
elseif op == 'success' then
  return {redis.call('DEL', key), '0'}
elseif op == 'unprobe' then
  redis.call('HSET', key, 'probe', '0')
  return {0, '0'}
end
return redis.error_reply('unknown op ' .. op)
"""

_script = None

USABLE, PROBE, WAIT = 1, 2, 0


def _run(relay_id: int, *args: object) -> list:
    global _script
    if _script is None:
        _script = redis_client().register_script(_SCRIPT)
    return _script(keys=[redis_key("delivery", "relay", relay_id, "health")], args=list(args))


def check(relay_id: int) -> tuple[int, float]:
    """(USABLE | PROBE | WAIT, seconds to wait). PROBE: use the relay now; the others wait for you."""
    state, seconds = _run(relay_id, "check", settings.DELIVERY_SMTP_TIMEOUT + 5)[:2]
    return int(state), float(seconds)


def give_back_probe(relay_id: int) -> None:
    """A runner granted the probe that will not use the relay after all lets another take it."""
    _run(relay_id, "unprobe")


@dataclass(frozen=True)
class Failure:
    failures: int  # consecutive failures of the relay, across every runner
    seconds: float  # how long it is backed off from now
    counted: bool  # False when another runner had already counted this outage


def failure(relay_id: int, *, probe: bool = False) -> Failure:
    count, seconds, counted = _run(
        relay_id,
        "failure",
        settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS,
        settings.DELIVERY_RELAY_BACKOFF_MAX_SECONDS,
        random.random(),  # noqa: S311 - jitter, not a secret
        "1" if probe else "0",
    )
    return Failure(int(count), float(seconds), bool(counted))


def success(relay_id: int) -> bool:
    """The relay worked: healthy again at once. True when it had been failing."""
    return bool(_run(relay_id, "success")[0])
