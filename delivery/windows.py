"""Sending windows: a Mailing may go out only between two times of day, in one time zone or in
each recipient's own (the contact's `timezone`, else settings.DEFAULT_TIMEZONE).

The window is part of the snapshot (`Mailing.meta["window"]`, set by `mailing_create`). It is
enforced at claim time (`delivery.engine`): a claimed Message outside its window is held in the
ledger (`HoldReason.WINDOW`, `next_attempt_at` = the window's next opening) and comes back to the
queue then (`ledger.requeue_due`, the watchdog), as the same row: it goes once, at the next window.
A window from 22:00 to 06:00 runs over midnight; start and end may not be equal.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from mailplatform.errors import Invalid
from mailplatform.locales import check_timezone

# The window's zone value meaning "each recipient's own time zone".
PER_CONTACT = "contact"


@dataclass(frozen=True)
class SendWindow:
    start: dt.time
    end: dt.time
    zone: str  # an IANA name, or PER_CONTACT

    @property
    def per_contact(self) -> bool:
        return self.zone == PER_CONTACT

    def to_meta(self) -> dict[str, str]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M"), "tz": self.zone}

    def describe(self) -> str:
        where = "each recipient's own time zone" if self.per_contact else self.zone
        return f"{self.start:%H:%M}–{self.end:%H:%M} ({where})"

    def next_open(self, zone_name: str, now: dt.datetime) -> dt.datetime | None:
        """None when `now` is inside the window in that zone; else when the window next opens."""
        zone = _zone(zone_name)
        local = now.astimezone(zone)
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= t < self.end
        else:  # over midnight
            inside = t >= self.start or t < self.end
        if inside:
            return None
        # Outside, the next opening is today's start when it is still ahead, else tomorrow's.
        day = local.date() if t < self.start else local.date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, self.start, tzinfo=zone).astimezone(dt.UTC)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.DEFAULT_TIMEZONE)


def _time(value: Any, field: str) -> dt.time:
    if isinstance(value, dt.time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    try:
        return dt.time.fromisoformat(str(value).strip()).replace(second=0, microsecond=0)
    except ValueError:
        raise Invalid(f"{value!r} is not a time of day (HH:MM)", field=field) from None


def check_window(value: Any) -> SendWindow | None:
    """A window from {"start": "09:00", "end": "17:00", "tz": "Europe/Berlin" | "contact"}, or None
    for an empty value; Invalid names what is wrong."""
    if not value:
        return None
    if not isinstance(value, dict):
        raise Invalid("a sending window is {start, end, tz}", field="send_window")
    start = _time(value.get("start"), "window_start")
    end = _time(value.get("end"), "window_end")
    if start == end:
        raise Invalid("the sending window starts and ends at the same time", field="window_end")
    zone = str(value.get("tz") or PER_CONTACT)
    if zone != PER_CONTACT:
        try:
            zone = check_timezone(zone)
        except ValueError as exc:
            raise Invalid(str(exc), field="window_timezone") from None
    return SendWindow(start, end, zone)


def of(meta: dict[str, Any] | None) -> SendWindow | None:
    """The window a Mailing's snapshot carries (None: any time)."""
    raw = (meta or {}).get("window")
    if not raw:
        return None
    try:
        return check_window(raw)
    except Invalid:  # written by check_window at creation: cannot happen, but never stop a send for it
        return None


def outside(
    window: SendWindow, recipients: Iterable[tuple[int, int | None]], now: dt.datetime
) -> dict[dt.datetime, list[int]]:
    """Of (message id, contact id) pairs, those outside the window now, by when it next opens."""
    pairs = list(recipients)
    if window.per_contact:
        from contacts.selectors import contact_timezones

        zones = contact_timezones([c for _, c in pairs if c is not None])
    else:
        zones = {}
    cache: dict[str, dt.datetime | None] = {}
    held: dict[dt.datetime, list[int]] = defaultdict(list)
    for message_id, contact_id in pairs:
        zone = window.zone
        if window.per_contact:
            zone = (
                zones.get(contact_id) or settings.DEFAULT_TIMEZONE
                if contact_id
                else settings.DEFAULT_TIMEZONE
            )
        if zone not in cache:
            cache[zone] = window.next_open(zone, now)
        if cache[zone] is not None:
            held[cache[zone]].append(message_id)
    return dict(held)
