"""Per-relay limits that hold across every worker on every host: one Lua script in Redis.

Token bucket for messages per second (capacity = the relay's burst), counters per clock hour
and per UTC day, and a connection semaphore whose slots are leases (a worker killed with
SIGKILL loses its slot when the lease runs out, not never). Redis runs a script atomically,
so there is no read-modify-write race between workers; time is Redis's own clock, so hosts
with skewed clocks still share one bucket.

`Semaphore` is the generic lease-based semaphore (a relay's connections are one, the runners
of a Mailing another: delivery.runners).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from mailplatform.redis_cache import redis_client, redis_key

_SCRIPT = """
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

-- A receiving domain's adaptive rate (AIMD): halved at a rate-limit reply, then growing back by
-- `inc` msg/s per second; nil once it is back at `cap` (its configured rate, or the ceiling).
local function adaptive(key, cap, inc)
  local a = redis.call('HMGET', key, 'rate', 'ts')
  local r = tonumber(a[1])
  if r == nil then return nil end
  r = r + inc * math.max(0, now - tonumber(a[2]))
  if r >= cap then
    redis.call('DEL', key)
    return nil
  end
  return r
end

if op == 'dslow' then
  -- KEYS: aimd. ARGV: op, configured rate (0 none), start, floor, ceiling, inc
  local rate, start, floor, ceiling, inc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local cap = rate > 0 and rate or ceiling
  local last = tonumber(redis.call('HGET', KEYS[1], 'slowed') or '0')
  local current = adaptive(KEYS[1], cap, inc) or (rate > 0 and rate or start)
  -- Replies to messages already in flight say the same thing: one halving per second.
  if now - last < 1 then return {0, tostring(current)} end
  local slower = math.max(floor, current / 2)
  redis.call('HSET', KEYS[1], 'rate', tostring(slower), 'ts', tostring(now), 'slowed', tostring(now))
  redis.call('EXPIRE', KEYS[1], 7 * 86400)
  return {1, tostring(slower)}
end

if op == 'dslots' then
  -- Turns for mail held for a receiving domain, shared by every worker so that held mail comes
  -- back at the domain's pace, not once per worker. KEYS: slots[, bucket]. ARGV: op, count, interval, not before (s)
  local count, interval = tonumber(ARGV[2]), tonumber(ARGV[3])
  local start = math.max(now + tonumber(ARGV[4]), tonumber(redis.call('GET', KEYS[1]) or '0'))
  local finish = start + count * interval
  redis.call('SET', KEYS[1], tostring(finish), 'EX', math.ceil(finish - now) + 60)
  if KEYS[2] then
    -- The turns are the domain's pace until `finish`: its bucket is empty until then and fills from
    -- there, or the tokens it gathered meanwhile would go out on top of the turns.
    redis.call('HSET', KEYS[2], 'tokens', '0', 'ts', tostring(finish))
    redis.call('EXPIRE', KEYS[2], math.ceil(finish - now) + 3600)
  end
  return {count, tostring(start - now)}
end

if op == 'wtake' or op == 'wpeek' then
  -- Warm-up: each KEY is one schedule's count for its current day, with that day's cap in ARGV
  -- (after op, want, ttl). Grants what every cap still allows, and counts it on every key at once.
  -- KEYS: day counters. ARGV: op, want, ttl, cap per key.
  local grant = tonumber(ARGV[2])
  for i, key in ipairs(KEYS) do
    local left = tonumber(ARGV[3 + i]) - tonumber(redis.call('GET', key) or '0')
    if left < grant then grant = math.max(0, left) end
  end
  if op == 'wtake' and grant > 0 then
    for _, key in ipairs(KEYS) do
      redis.call('INCRBY', key, grant)
      redis.call('EXPIRE', key, tonumber(ARGV[3]))
    end
  end
  return {grant, '0'}
end

if op == 'take' or op == 'dtake' then
  -- KEYS: bucket, hour prefix, day prefix[, aimd]. ARGV: op, want, rate, burst, per_hour, per_day[, ceiling, inc]
  local want = tonumber(ARGV[2])
  local rate = tonumber(ARGV[3])
  local burst = tonumber(ARGV[4])
  local per_hour = tonumber(ARGV[5])
  local per_day = tonumber(ARGV[6])
  if op == 'dtake' then
    local slowed = adaptive(KEYS[4], rate > 0 and rate or tonumber(ARGV[7]), tonumber(ARGV[8]))
    if slowed ~= nil then
      rate = slowed
      burst = math.max(1, math.ceil(slowed))
    end
  end
  local grant = want
  local wait = 0
  local tokens = 0
  local bucket_ts = now
  if rate > 0 then
    local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
    tokens = tonumber(b[1])
    local ts = tonumber(b[2])
    if tokens == nil or ts == nil then
      tokens = burst
      ts = now
    end
    tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
    -- A bucket emptied until a domain's held turns are over (dslots) does not fill before then.
    if ts > now then bucket_ts = ts end
    local whole = math.floor(tokens)
    if whole < grant then grant = whole end
    if grant < 1 then wait = (1 - tokens) / rate + (bucket_ts - now) end
  end
  local hour_key = KEYS[2] .. ':' .. math.floor(now / 3600)
  local day_key = KEYS[3] .. ':' .. math.floor(now / 86400)
  if per_hour > 0 then
    local left = per_hour - tonumber(redis.call('GET', hour_key) or '0')
    if left < grant then grant = math.max(0, left) end
    if left <= 0 then wait = math.max(wait, 3600 - (now % 3600)) end
  end
  if per_day > 0 then
    local left = per_day - tonumber(redis.call('GET', day_key) or '0')
    if left < grant then grant = math.max(0, left) end
    if left <= 0 then wait = math.max(wait, 86400 - (now % 86400)) end
  end
  if grant > 0 then
    tokens = tokens - grant
    if per_hour > 0 then
      redis.call('INCRBY', hour_key, grant)
      redis.call('EXPIRE', hour_key, 7300)
    end
    if per_day > 0 then
      redis.call('INCRBY', day_key, grant)
      redis.call('EXPIRE', day_key, 90000)
    end
  end
  if rate > 0 then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(bucket_ts))
    redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate + bucket_ts - now) + 60)
  end
  return {grant, tostring(wait), tostring(rate)}
end

-- Connection slots. KEYS: the slots' sorted set. ARGV: op, token, limit, lease seconds
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if op == 'acquire' then
  if redis.call('ZSCORE', key, ARGV[2]) then
    redis.call('ZADD', key, now + tonumber(ARGV[4]), ARGV[2])
    return {1, '0'}
  end
  if redis.call('ZCARD', key) >= tonumber(ARGV[3]) then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {0, tostring(tonumber(first[2]) - now)}
  end
  redis.call('ZADD', key, now + tonumber(ARGV[4]), ARGV[2])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[4])) + 60)
  return {1, '0'}
elseif op == 'refresh' then
  local held = redis.call('ZADD', key, 'XX', 'CH', now + tonumber(ARGV[4]), ARGV[2])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[4])) + 60)
  return {held, '0'}
elseif op == 'release' then
  redis.call('ZREM', key, ARGV[2])
  return {1, '0'}
elseif op == 'count' then
  return {redis.call('ZCARD', key), '0'}
end
return redis.error_reply('unknown op ' .. op)
"""

_script = None


def _call(keys: list[str], args: list) -> list:
    global _script
    if _script is None:
        _script = redis_client().register_script(_SCRIPT)
    return _script(keys=keys, args=args)


def _run(keys: list[str], args: list) -> tuple[int, float]:
    count, wait = _call(keys, args)[:2]
    return int(count), float(wait)


def _prefix(relay_id: int) -> str:
    return redis_key("delivery", "relay", relay_id)


@dataclass(frozen=True)
class Limits:
    per_second: float = 0
    burst: int = 0
    per_hour: int = 0
    per_day: int = 0
    # Receiving domain groups only: how many runners may carry the group's mail at once (0: any).
    connections: int = 0

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0 and self.per_hour <= 0 and self.per_day <= 0

    @property
    def capacity(self) -> int:
        return self.burst or max(1, int(self.per_second + 0.999))


def take(relay_id: int, want: int, limits: Limits) -> tuple[int, float]:
    """Up to `want` messages the relay may send now, and how long to wait when that is 0."""
    if limits.unlimited:
        return want, 0.0
    base = _prefix(relay_id)
    return _run(
        [f"{base}:bucket", f"{base}:hour", f"{base}:day"],
        ["take", want, limits.per_second, limits.capacity, limits.per_hour, limits.per_day],
    )


# --- receiving domains: the same buckets and counters, plus the adaptive (AIMD) rate ---


@dataclass(frozen=True)
class Aimd:
    start: float
    floor: float
    ceiling: float
    increase: float


def _domain_prefix(group: str) -> str:
    return redis_key("delivery", "domain", group)


def domain_take(group: str, want: int, limits: Limits, aimd: Aimd) -> tuple[int, float, float]:
    """Up to `want` messages this receiving domain (group) may get now, the wait when 0, and the
    rate in force (0: none). One script with the relay buckets, so every worker shares it."""
    base = _domain_prefix(group)
    grant, wait, rate = _call(
        [f"{base}:bucket", f"{base}:hour", f"{base}:day", f"{base}:aimd"],
        [
            "dtake",
            want,
            limits.per_second,
            limits.capacity,
            limits.per_hour,
            limits.per_day,
            aimd.ceiling,
            aimd.increase,
        ],
    )
    return int(grant), float(wait), float(rate)


def domain_turns(group: str, count: int, interval: float, not_before: float) -> float:
    """Reserve `count` turns `interval` apart for held mail of this domain, after every turn already
    given out (by any worker) and not before `not_before` seconds from now; seconds until the first."""
    base = _domain_prefix(group)
    _count, start = _call([f"{base}:turns", f"{base}:bucket"], ["dslots", count, interval, not_before])
    return float(start) + interval


def domain_turns_ahead(group: str) -> float:
    """Seconds until the last turn given out for this domain's held mail (0 when none is pending)."""
    client = redis_client()
    value, now = client.get(f"{_domain_prefix(group)}:turns"), client.time()
    if value is None:
        return 0.0
    return max(0.0, float(value) - (now[0] + now[1] / 1_000_000))


def domain_slow_down(group: str, limits: Limits, aimd: Aimd) -> float | None:
    """A rate-limit reply from this domain: halve its rate (at most once a second). The new rate,
    or None when it was halved less than a second ago."""
    halved, rate = _call(
        [f"{_domain_prefix(group)}:aimd"],
        ["dslow", limits.per_second, aimd.start, aimd.floor, aimd.ceiling, aimd.increase],
    )
    return float(rate) if int(halved) else None


def domain_rates(groups: list[str], limits_of, aimd: Aimd) -> dict[str, float]:
    """The adaptive rate in force now for each of `groups` that is slowed down (the relay page)."""
    client = redis_client()
    now = time.time()
    out = {}
    for group in groups:
        rate, ts = client.hmget(f"{_domain_prefix(group)}:aimd", "rate", "ts")
        if rate is None:
            continue
        cap = limits_of(group).per_second or aimd.ceiling
        current = float(rate) + aimd.increase * max(0.0, now - float(ts))
        if current < cap:
            out[group] = current
    return out


def slowed_groups() -> list[str]:
    prefix = _domain_prefix("")
    return sorted(
        key.decode()[len(prefix) : -len(":aimd")]
        if isinstance(key, bytes)
        else key[len(prefix) : -len(":aimd")]
        for key in redis_client().scan_iter(f"{prefix}*:aimd")
    )


def usage(relay_id: int) -> dict[str, int]:
    """Messages counted this clock hour and this UTC day, and connections held now (for the dashboard)."""
    base = _prefix(relay_id)
    now = time.time()
    client = redis_client()
    hour, day = client.mget(f"{base}:hour:{int(now // 3600)}", f"{base}:day:{int(now // 86400)}")
    connections, _ = _run([f"{base}:conns"], ["count", "", 0, 0])
    return {"hour": int(hour or 0), "day": int(day or 0), "connections": connections}


class Semaphore:
    """A lease on one of `limit` places named by `key`, held across every worker on every host.

    A holder refreshes its lease while it works; one that dies frees its place when the lease runs
    out. `token` names the holder: passing the same token again re-takes (or refreshes) its place.
    """

    def __init__(self, key: str, limit: int, lease_seconds: float, *, token: str | None = None) -> None:
        self.key = key
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.token = token or secrets.token_hex(8)
        self.held = False

    def acquire(self) -> float:
        """0 when acquired, else the seconds until a slot may free up."""
        granted, wait = _run([self.key], ["acquire", self.token, self.limit, self.lease_seconds])
        self.held = bool(granted)
        return 0.0 if granted else max(wait, 0.05)

    def refresh(self) -> bool:
        held, _ = _run([self.key], ["refresh", self.token, self.limit, self.lease_seconds])
        # A slot that expired (the worker stalled past its lease) is taken again if there is room.
        if not held:
            return self.acquire() == 0.0
        return True

    def count(self) -> int:
        """Places held now (leases not run out), by anyone."""
        return _run([self.key], ["count", "", 0, 0])[0]

    def release(self) -> None:
        if self.held:
            _run([self.key], ["release", self.token, self.limit, self.lease_seconds])
            self.held = False


class ConnectionSlot(Semaphore):
    """A lease on one of a relay's connections; refresh it while the connection is in use."""

    def __init__(self, relay_id: int, limit: int, lease_seconds: float) -> None:
        super().__init__(f"{_prefix(relay_id)}:conns", limit, lease_seconds)


# --- warm-up: daily caps, counted once for every worker (delivery.warmup) ---


def warmup_take(counters: list[tuple[str, int]], want: int, *, peek: bool = False) -> int:
    """Up to `want` messages that every (day counter key, cap) still allows today; counted on all of
    them in one script run unless `peek`."""
    if not counters:
        return want
    grant, _ = _run(
        [key for key, _ in counters],
        ["wpeek" if peek else "wtake", want, 3 * 86400, *(cap for _, cap in counters)],
    )
    return grant


def warmup_used(key: str) -> int:
    return int(redis_client().get(key) or 0)


# --- messages sent per second, per Mailing (the progress page's rate) ---


def _sent_key(mailing_id: int, second: int) -> str:
    return redis_key("delivery", "mailing", mailing_id, "sent", second)


def count_sent(mailing_id: int, count: int, pipe: Any = None) -> None:
    """Add to this second's sent count (recent_rate); on `pipe` (a Redis pipeline the caller
    executes) when given."""
    key = _sent_key(mailing_id, int(time.time()))
    own = pipe is None
    if own:
        pipe = redis_client().pipeline()
    pipe.incrby(key, count)
    pipe.expire(key, 120)
    if own:
        pipe.execute()


def recent_rate(mailing_id: int, window: int = 10) -> float:
    """Messages per second over the last `window` whole seconds, counted from the oldest second in
    it that sent anything: two seconds into a send (or after a resume) the rate is what those two
    seconds sent, not their sum spread over ten (which made the first estimate ten times too long)."""
    now = int(time.time())
    values = [
        int(v or 0)
        for v in redis_client().mget([_sent_key(mailing_id, now - i) for i in range(1, window + 1)])
    ]
    busy = [i for i, v in enumerate(values, start=1) if v]
    return sum(values) / busy[-1] if busy else 0.0


def reset(relay_id: int) -> None:
    """Forget a relay's counters (tests, and a relay deleted and its id reused)."""
    client = redis_client()
    keys = list(client.scan_iter(f"{_prefix(relay_id)}:*"))
    if keys:
        client.delete(*keys)
