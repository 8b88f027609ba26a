"""Warm-up: daily caps that grow while a new sending domain or relay earns its reputation.

A schedule (models.WarmupSchedule) names a sending domain (the From's domain) or a relay, and the
most that may go each day: `caps[n]` on day n, day 0 being `starts_on` (UTC days); after the last
day there is no cap. Today's count of each schedule is a counter in Redis (ratelimit.warmup_take,
the relay buckets' script), shared by every worker on every host and keyed by the schedule's day.

At claim time the engine asks `grant` how many of a claimed batch may go (in id order); the rest
of the Mailing waits in the ledger (hold reason `warmup`, not before the next UTC day). A relay at
its cap is only left for the other relays of the Mailing; when every relay it may use is capped
the Mailing's mail waits too. `release` (each runner, and the watchdog) puts held mail back in the
queue, oldest first, as far as today's caps allow: a new day, or a cap raised in the dashboard,
takes effect at once. `estimate` is what the progress pages say about when the mail will be out.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from delivery import ledger, ratelimit
from delivery.models import HoldReason, Mailing, Message, MessageState, Relay, WarmupSchedule
from mailplatform.errors import Invalid, NotFound
from mailplatform.redis_cache import redis_key
from mailplatform.services import audit_record

# Starting points offered in the dashboard (each editable once chosen): daily caps over 30 days.
STARTERS: dict[str, tuple[str, tuple[int, ...]]] = {
    "standard": (
        "Standard: 50 to 350,000 a day over 30 days",
        (50, 100, 500, 1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 25000, 30000, 40000, 50000,
         60000, 70000, 80000, 90000, 100000, 120000, 140000, 160000, 180000, 200000, 225000, 250000,
         275000, 300000, 350000),
    ),
    "cautious": (
        "Cautious: 20 to 50,000 a day over 30 days (a domain with no sending history)",
        (20, 50, 100, 150, 250, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 3500, 4000, 5000,
         6000, 7000, 8000, 10000, 12000, 14000, 17000, 20000, 25000, 30000, 35000, 42000, 50000),
    ),
    "small": (
        "Small list: 50 to 5,000 a day over 30 days",
        (50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800,
         2000, 2250, 2500, 2750, 3000, 3300, 3600, 3900, 4200, 4500, 4750, 5000),
    ),
}  # fmt: skip
MAX_DAYS = 366


# --- the schedule's clock ---


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def day_index(schedule: WarmupSchedule, on: dt.date | None = None) -> int:
    return ((on or today()) - schedule.starts_on).days


def cap_on(schedule: WarmupSchedule, index: int) -> int | None:
    """The day's cap (before the start: the first day's), None once the schedule is over."""
    caps = list(schedule.caps or [])
    if not caps or index >= len(caps):
        return None
    return int(caps[max(0, index)])


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def _counter(schedule: WarmupSchedule, index: int) -> str:
    return redis_key("delivery", "warmup", schedule.pk, "day", index)


def _counters(schedules: Sequence[WarmupSchedule], on: dt.date) -> list[tuple[str, int]]:
    out = []
    for schedule in schedules:
        index = day_index(schedule, on)
        cap = cap_on(schedule, index)
        if cap is not None:
            out.append((_counter(schedule, index), cap))
    return out


def used_today(schedule: WarmupSchedule) -> int:
    return ratelimit.warmup_used(_counter(schedule, day_index(schedule)))


# --- which schedules apply ---


def from_domain(from_email: str) -> str:
    return from_email.rpartition("@")[2].strip().lower().rstrip(".")


# The engine asks at every batch: the enabled schedules are read at most every
# DELIVERY_GATE_CACHE_SECONDS per process (a change in the dashboard reaches every worker within it).
_cache: tuple[float, list[WarmupSchedule]] = (0.0, [])


def _enabled() -> list[WarmupSchedule]:
    global _cache
    if time.monotonic() - _cache[0] >= settings.DELIVERY_GATE_CACHE_SECONDS:
        _cache = (time.monotonic(), list(WarmupSchedule.objects.filter(enabled=True).select_related("relay")))
    return _cache[1]


def forget_cached() -> None:
    global _cache
    _cache = (0.0, [])


def domain_schedule(from_email: str) -> WarmupSchedule | None:
    domain = from_domain(from_email)
    return next((s for s in _enabled() if s.domain and s.domain == domain), None)


def relay_schedules(relay_ids: Sequence[int]) -> dict[int, WarmupSchedule]:
    wanted = set(relay_ids)
    return {s.relay_id: s for s in _enabled() if s.relay_id in wanted}


def room(schedules: Sequence[WarmupSchedule], want: int = 1 << 30) -> int:
    """How many more may go today under every one of `schedules` (not counted)."""
    return ratelimit.warmup_take(_counters(schedules, today()), want, peek=True)


def capped_relays(relay_ids: Sequence[int]) -> set[int]:
    """The relays whose own warm-up cap is used up for today."""
    return {rid for rid, schedule in relay_schedules(relay_ids).items() if room([schedule], 1) == 0}


# --- the engine's questions ---


def grant(mailing: Mailing, relay_id: int, want: int) -> tuple[int, str]:
    """How many of `want` claimed Messages may go now through `relay_id`, counted against today's caps;
    and, when fewer, which cap stopped the rest: "domain" (the From's domain: the Mailing waits) or
    "relay" (this relay's: the others may take it)."""
    domain = domain_schedule(mailing.from_email)
    relay = relay_schedules([relay_id]).get(relay_id)
    schedules = [s for s in (domain, relay) if s is not None]
    if not schedules:
        return want, ""
    granted = ratelimit.warmup_take(_counters(schedules, today()), want)
    if granted >= want:
        return granted, ""
    if domain is not None and room([domain], 1) == 0:
        return granted, "domain"
    return granted, "relay"


@contextmanager
def claiming_in_turn(mailing: Mailing, relay_id: int) -> Iterator[None]:
    """While a warm-up schedule applies, the Mailing's runners claim a batch and take today's places
    for it one at a time. Claims go oldest first, and so do the places: two runners granting at once
    would let a later batch take the places of an earlier one (out of order across the days)."""
    if domain_schedule(mailing.from_email) is None and relay_id not in relay_schedules([relay_id]):
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [CLAIM_LOCK_NAMESPACE, mailing.pk])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [CLAIM_LOCK_NAMESPACE, mailing.pk])


def hold_until() -> dt.datetime:
    """Mail over today's cap waits for the next UTC day (release may bring it back sooner)."""
    return day_start(today() + dt.timedelta(days=1))


def release(mailing_id: int) -> int:
    """Held warm-up mail back to the queue, oldest first, as far as today's caps let it go now."""
    if not Message.objects.filter(
        mailing_id=mailing_id, state=MessageState.DEFERRED, hold_reason=HoldReason.WARMUP
    ).exists():
        return 0
    mailing = Mailing.objects.filter(pk=mailing_id).first()
    if mailing is None:
        return 0
    domain = domain_schedule(mailing.from_email)
    left = room([domain]) if domain is not None else 1 << 30
    pool = _pool_ids(mailing)
    relays = relay_schedules(pool)
    if pool and len(relays) == len(pool):
        # Every relay it may use is warming up: together they allow the sum of what each has left.
        left = min(left, sum(room([s]) for s in relays.values()))
    if left <= 0:
        return 0
    with transaction.atomic():
        # One release at a time per Mailing (runners and the watchdog all call this), and what is
        # already back in the queue counts against the room: never more out than today's caps take,
        # or a later message could be granted before an earlier one.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [RELEASE_LOCK_NAMESPACE, mailing_id])
        waiting = Message.objects.filter(
            mailing_id=mailing_id, state__in=[MessageState.QUEUED, MessageState.SENDING]
        ).count()
        left -= waiting
        if left <= 0:
            return 0
        return ledger.release_held(mailing_id, HoldReason.WARMUP, min(left, 1 << 30))


RELEASE_LOCK_NAMESPACE = 0x7761726D  # "warm": keeps these advisory locks apart from other apps'
CLAIM_LOCK_NAMESPACE = 0x77636C6D  # "wclm"


def _pool_ids(mailing: Mailing) -> list[int]:
    chosen = list(mailing.relays.filter(enabled=True).values_list("pk", flat=True))
    return chosen or list(Relay.objects.filter(enabled=True).values_list("pk", flat=True))


def release_all() -> int:
    """The watchdog's round: every open Mailing with warm-up mail held."""
    mailing_ids = (
        Message.objects.filter(state=MessageState.DEFERRED, hold_reason=HoldReason.WARMUP)
        .values_list("mailing_id", flat=True)
        .distinct()
    )
    open_ids = Mailing.objects.filter(pk__in=list(mailing_ids), state__in=ledger.ACTIVE_STATES)
    return sum(release(mailing_id) for mailing_id in open_ids.values_list("pk", flat=True))


# --- what the progress pages say ---


def estimate(mailing: Mailing, remaining: int) -> dict[str, Any] | None:
    """When this Mailing's `remaining` Messages should be out at its schedules' pace, or None when no
    schedule applies. Other mailings from the same domain share the caps: this counts only this one."""
    domain = domain_schedule(mailing.from_email)
    pool = _pool_ids(mailing)
    relays = relay_schedules(pool)
    relay_list = list(relays.values()) if pool and len(relays) == len(pool) else []
    if domain is None and not relay_list:
        return None
    start = today()

    def capacity(offset: int) -> int | None:
        day = start + dt.timedelta(days=offset)
        caps = []
        if domain is not None:
            caps.append(cap_on(domain, day_index(domain, day)))
        if relay_list:
            per_relay = [cap_on(s, day_index(s, day)) for s in relay_list]
            caps.append(None if any(c is None for c in per_relay) else sum(per_relay))
        known = [c for c in caps if c is not None]
        return min(known) if known else None

    today_cap = capacity(0)
    left_today = room([domain]) if domain is not None else 1 << 30
    if relay_list:
        left_today = min(left_today, sum(room([s]) for s in relay_list))
    left = remaining - max(0, left_today)
    offset = 0
    while left > 0 and offset < MAX_DAYS:
        offset += 1
        cap = capacity(offset)
        if cap is None:
            left = 0
            break
        left -= cap
    schedule = domain or relay_list[0]
    return {
        "target": ", ".join(
            [*([domain.domain] if domain else []), *(f"relay {s.relay.name}" for s in relay_list)]
        ),
        "cap_today": today_cap,
        "left_today": None if today_cap is None else max(0, left_today),
        "day": day_index(schedule) + 1,
        "days": len(schedule.caps),
        "finish_on": start + dt.timedelta(days=offset),
        "finishes_today": offset == 0,
        "next_day_at": hold_until(),
    }


# --- services: the dashboard's writes (admins), audited ---


def parse_caps(text: str | Sequence[int]) -> list[int]:
    """ "50, 100, 500" (commas, spaces or lines) as a list of growing daily caps."""
    if isinstance(text, str):
        parts = [p for p in text.replace(",", " ").split() if p]
        try:
            caps = [int(p.replace("_", "")) for p in parts]
        except ValueError:
            raise Invalid("daily caps are whole numbers, e.g. 50, 100, 500", field="caps") from None
    else:
        caps = [int(c) for c in text]
    if not caps:
        raise Invalid("give at least one day's cap", field="caps")
    if len(caps) > MAX_DAYS:
        raise Invalid(f"at most {MAX_DAYS} days", field="caps")
    if any(c < 1 for c in caps):
        raise Invalid("every day's cap is at least 1", field="caps")
    if any(b < a for a, b in zip(caps, caps[1:], strict=False)):
        raise Invalid("a warm-up's caps never go down from one day to the next", field="caps")
    return caps


def warmup_save(
    schedule: WarmupSchedule | None = None,
    *,
    domain: str = "",
    relay_id: int | None = None,
    caps: str | Sequence[int],
    starts_on: dt.date | None = None,
    enabled: bool = True,
    by: Any = None,
) -> WarmupSchedule:
    """Create or change a warm-up schedule for a sending domain or (exclusively) a relay."""
    domain = from_domain(domain) if domain else ""
    if bool(domain) == bool(relay_id):
        raise Invalid("choose a sending domain or a relay (one of them)", field="domain")
    if domain and ("." not in domain or " " in domain):
        raise Invalid(f"{domain!r} is not a domain", field="domain")
    if relay_id and not Relay.objects.filter(pk=relay_id).exists():
        raise NotFound("no such relay")
    parsed = parse_caps(caps)
    schedule = schedule or WarmupSchedule()
    creating = schedule.pk is None
    clash = WarmupSchedule.objects.exclude(pk=schedule.pk)
    if (domain and clash.filter(domain=domain).exists()) or (
        relay_id and clash.filter(relay_id=relay_id).exists()
    ):
        raise Invalid("this domain or relay already has a warm-up schedule: change that one", field="domain")
    before = {
        "caps": list(schedule.caps or []),
        "starts_on": str(schedule.starts_on),
        "enabled": schedule.enabled,
    }
    schedule.domain = domain
    schedule.relay_id = relay_id
    schedule.caps = parsed
    schedule.starts_on = starts_on or schedule.starts_on or today()
    schedule.enabled = enabled
    with transaction.atomic():
        schedule.save()
        forget_cached()
        transaction.on_commit(forget_cached)
        audit_record(
            by,
            "warmup.created" if creating else "warmup.updated",
            schedule,
            details={
                "target": schedule.target,
                "caps": parsed,
                "starts_on": str(schedule.starts_on),
                "enabled": enabled,
                **({} if creating else {"before": before}),
            },
        )
    return schedule


def warmup_delete(schedule: WarmupSchedule, *, by: Any = None) -> None:
    with transaction.atomic():
        audit_record(by, "warmup.deleted", schedule, details={"target": schedule.target})
        schedule.delete()
        transaction.on_commit(forget_cached)


def schedules_overview() -> list[dict[str, Any]]:
    """Each schedule with today's day, cap and count (the warm-up page)."""
    rows = []
    for schedule in WarmupSchedule.objects.select_related("relay"):
        index = day_index(schedule)
        cap = cap_on(schedule, index)
        try:
            used = used_today(schedule)
        except Exception:  # Redis down must not take the page with it
            used = 0
        rows.append(
            {
                "schedule": schedule,
                "day": index + 1,
                "days": len(schedule.caps),
                "cap": cap,
                "used": used,
                "percent": min(100, int(used * 100 / cap)) if cap else 0,
                "over": index >= len(schedule.caps),
                "caps_text": ", ".join(str(c) for c in schedule.caps),
            }
        )
    return rows
