"""Redis connections from REDIS_URL, whichever form it takes (TCP or the embedded Unix socket)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache


def redis_py_url(url: str) -> str:
    """Celery's `redis+socket:///path?virtual_host=N` as redis-py's `unix:///path?db=N`."""
    parts = urlsplit(url)
    if parts.scheme in ("redis+socket", "socket"):
        db = parse_qs(parts.query).get("virtual_host", ["0"])[0]
        return f"unix://{parts.path}?db={db}"
    return url


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_py_url(url), health_check_interval=30)


def redis_client() -> redis.Redis:
    """A shared client for rate limits, locks and counters."""
    return _client_for(settings.REDIS_URL)


def redis_key(*parts: object) -> str:
    """A key under the install's cache prefix: `<prefix>:part:part`.

    Installs (and benchmarks, and tests) that share one Redis keep their keys apart by prefix;
    every key the platform sets directly on Redis is built here, never by hand.
    """
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "posthorn")
    return ":".join([prefix, *(str(part) for part in parts)])


class SocketAwareRedisCache(RedisCache):
    def __init__(self, server: str, params: dict) -> None:
        super().__init__(redis_py_url(server), params)
