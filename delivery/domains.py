"""Receiving domains: which group a recipient's domain belongs to, its limits, and its slowdown.

Big receivers run many domains on one infrastructure and limit them together (gmail.com with
googlemail.com), so limits apply per *group*; a domain in no group is its own group. Limits
(per second, hour, day) come from settings.DELIVERY_DOMAIN_LIMITS; they are token buckets and
counters in the relay buckets' Redis script (delivery.ratelimit), shared by every worker on every
host. A 4.7.x rate-limit reply halves the group's rate and it grows back slowly (AIMD); the relay
itself is not backed off for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings

from delivery import ratelimit
from mailplatform.redis_cache import redis_key

BUILT_IN_GROUPS: dict[str, tuple[str, ...]] = {
    "gmail": ("gmail.com", "googlemail.com"),
    "microsoft": (
        "outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com", "hotmail.co.uk", "hotmail.fr",
        "hotmail.de", "hotmail.it", "hotmail.es", "live.co.uk", "live.fr", "live.de", "outlook.fr", "outlook.de",
    ),
    "yahoo": (
        "yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "aim.com", "yahoo.co.uk", "yahoo.fr",
        "yahoo.de", "yahoo.it", "yahoo.es", "yahoo.co.jp", "yahoo.ca", "yahoo.com.au", "verizon.net",
    ),
}  # fmt: skip


def _settings_key() -> tuple:
    return (
        repr(sorted(settings.DELIVERY_DOMAIN_GROUPS.items())),
        repr(sorted(settings.DELIVERY_DOMAIN_LIMITS.items())),
    )


@lru_cache(maxsize=4)
def _tables(_key: tuple) -> tuple[dict[str, str], dict[str, ratelimit.Limits]]:
    groups = {**BUILT_IN_GROUPS, **settings.DELIVERY_DOMAIN_GROUPS}
    domain_group = {}
    for group, domains in groups.items():
        for domain in domains:
            domain_group[str(domain).strip().lower()] = str(group)
    limits = {}
    for name, values in settings.DELIVERY_DOMAIN_LIMITS.items():
        values = values or {}
        limits[str(name).lower()] = ratelimit.Limits(
            per_second=float(values.get("per_second") or 0),
            burst=int(values.get("burst") or 0),
            per_hour=int(values.get("per_hour") or 0),
            per_day=int(values.get("per_day") or 0),
            connections=int(values.get("connections") or 0),
        )
    return domain_group, limits


def group_of(email: str) -> str:
    return groups_of([email])[0]


def groups_of(emails: Iterable[str]) -> list[str]:
    """Each address's receiving domain group; the tables are looked up once for the whole batch."""
    table = _tables(_settings_key())[0]
    domains = (email.rpartition("@")[2].strip().lower().rstrip(".") for email in emails)
    return [table.get(domain, domain) for domain in domains]


def members(group: str) -> list[str]:
    """The domains of a group (a domain in no group is a group of its own)."""
    domain_group = _tables(_settings_key())[0]
    found = sorted(domain for domain, name in domain_group.items() if name == group)
    return found or [group]


def limits_for(group: str) -> ratelimit.Limits:
    limits = _tables(_settings_key())[1]
    return limits.get(group) or limits.get("*") or ratelimit.Limits()


def aimd() -> ratelimit.Aimd:
    return ratelimit.Aimd(
        start=settings.DELIVERY_DOMAIN_AIMD_START_PER_SECOND,
        floor=settings.DELIVERY_DOMAIN_AIMD_FLOOR_PER_SECOND,
        ceiling=settings.DELIVERY_DOMAIN_AIMD_CEILING_PER_SECOND,
        increase=settings.DELIVERY_DOMAIN_AIMD_INCREASE,
    )


def take(group: str, want: int) -> tuple[int, float, float]:
    """(granted, seconds to wait when none, rate in force or 0)."""
    return ratelimit.domain_take(group, want, limits_for(group), aimd())


def turns(group: str, count: int, interval: float, not_before: float) -> float:
    return ratelimit.domain_turns(group, count, interval, not_before)


def rate_in_force(group: str) -> float:
    """The domain's rate now: its slowed-down rate, else its limit (0: none)."""
    limits = limits_for(group)
    slowed = ratelimit.domain_rates([group], limits_for, aimd()).get(group)
    return slowed if slowed is not None else limits.per_second


def turns_ahead(group: str) -> float:
    return ratelimit.domain_turns_ahead(group)


def connection_slot(group: str, limit: int) -> ratelimit.Semaphore:
    """A lease on one of the group's `limit` concurrent connections (the relay slots' script)."""
    return ratelimit.Semaphore(
        redis_key("delivery", "domain", group, "conns"), limit, settings.DELIVERY_LEASE_SECONDS
    )


def connections_in_use(group: str) -> int:
    return ratelimit.Semaphore(redis_key("delivery", "domain", group, "conns"), 0, 1).count()


def slow_down(group: str) -> float | None:
    return ratelimit.domain_slow_down(group, limits_for(group), aimd())


def overview() -> list[dict[str, object]]:
    """Every configured or slowed-down group, for the relay page."""
    domain_group, limits = _tables(_settings_key())
    members: dict[str, list[str]] = {}
    for domain, group in domain_group.items():
        members.setdefault(group, []).append(domain)
    slowed = ratelimit.slowed_groups()
    names = sorted(set(limits) | set(slowed) | set(BUILT_IN_GROUPS) | set(settings.DELIVERY_DOMAIN_GROUPS))
    rates = ratelimit.domain_rates(names, limits_for, aimd())
    return [
        {
            "group": name,
            "domains": sorted(members.get(name, [])) if name != "*" else ["every other domain"],
            "limits": limits_for(name) if name in limits or name == "*" else ratelimit.Limits(),
            "slowed_to": rates.get(name),
            "connections_in_use": connections_in_use(name) if limits_for(name).connections else None,
        }
        for name in names
    ]
