"""Per-key rate limits: a token bucket in Redis, shared by every web process on every host."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from mailplatform.models import ApiKey
from mailplatform.redis_cache import redis_client, redis_key

# One script so that read, refill and take are atomic: no read-modify-write race between processes.
_TOKEN_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(wait), tostring(math.floor(tokens))}
"""
_script = None


def take_token(bucket: str, per_minute: int) -> tuple[bool, float, int]:
    """Take one token from `bucket` refilled at `per_minute`; returns (allowed, seconds to wait, left)."""
    global _script
    if _script is None:
        _script = redis_client().register_script(_TOKEN_BUCKET)
    allowed, wait, left = _script(keys=[bucket], args=[per_minute / 60.0, per_minute])
    return bool(allowed), float(wait), int(left)


class ApiKeyRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True  # unauthenticated requests are refused before they cost anything
        limit = key.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
        allowed, wait, left = take_token(redis_key("api-rate", key.prefix), limit)
        # On the Django request, where the middleware finds it to set RateLimit-* headers.
        request._request.api_rate_limit = (limit, left)  # type: ignore[attr-defined]
        self._wait = wait
        return allowed

    def wait(self) -> float:
        return max(1, math.ceil(self._wait))
