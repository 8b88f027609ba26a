"""Typed readers for settings that come from the environment.

Each reader names the variable and what it expects when a value is malformed, so a
bad deployment stops at start-up with one clear line instead of a traceback later.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit


class ConfigError(Exception):
    """A setting from the environment is missing or malformed."""


# Every variable a reader was asked for: the deployment files are checked against it (a compose
# file that passes a variable nothing reads, or misses a secret a setting reads, fails a test).
NAMES_READ: set[str] = set()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    NAMES_READ.add(name)
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    NAMES_READ.add(name)
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off")


def env_checked(name: str, default: str, check: Callable[[str], str]) -> str:
    """The variable (or the default) as `check` returns it; `check` raises ValueError saying why not."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        value = default
    try:
        return check(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r}: {exc}") from None


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    NAMES_READ.add(name)
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} must be at least {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    NAMES_READ.add(name)
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} must be at least {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    NAMES_READ.add(name)
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    NAMES_READ.add(name)
    value = os.environ.get(name, default)
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name}={value!r} is not a URL with scheme {' or '.join(schemes)} and a host")
    return value.rstrip("/")


def parse_database_url(name: str, value: str) -> dict[str, object]:
    """postgresql://user:pass@host:port/db, or postgresql:///db?host=/socket/dir for a Unix socket."""
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ConfigError(f"{name}={value!r} must start with postgresql:// (PostgreSQL is the only engine)")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(f"{name}={value!r} names no database (expected postgresql://user@host:5432/dbname)")
    query = parse_qs(parts.query)
    host = query.pop("host", [unquote(parts.hostname or "")])[0]
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name}={value!r} has a port that is not a number") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": {key: values[0] for key, values in query.items()},
    }


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    NAMES_READ.add(name)
    value = (os.environ.get(name) or default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


BROKER_SCHEMES = ("redis", "rediss", "redis+socket", "unix", "amqp", "amqps", "pyamqp")


def check_broker_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in BROKER_SCHEMES:
        raise ConfigError(
            f"{name} must start with redis://, rediss://, amqp:// or amqps:// (got {parts.scheme!r})"
        )
    return value


def check_redis_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "redis+socket", "unix"):
        raise ConfigError(f"{name}={value!r} must start with redis://, rediss:// or redis+socket://")
    return value


def env_json(name: str, default: dict) -> dict:
    """A JSON object from the environment; anything else is a configuration error."""
    import json

    value = os.environ.get(name)
    if value is None or not value.strip():
        return dict(default)
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return parsed
