"""Language tags and time zones: the checks every app uses for a person's language and zone.

Contacts store them (contacts.models.Contact.language / .timezone); the install's defaults
(DEFAULT_LANGUAGE, DEFAULT_TIMEZONE) are checked with the same functions at start-up. Plain
Python, no Django: settings.py calls it.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

# BCP 47 (RFC 5646) shape without the registry: language (2-3 letters; the 5-8 letter form is
# reserved and unused, and would let "english" through), an optional script (4 letters), an optional region (2 letters or 3 digits), then variants.
# Extensions and private use (-u-, -x-) are not things a mail platform needs; refused.
_TAG = re.compile(
    r"(?P<language>[a-z]{2,3})"
    r"(?:-(?P<script>[a-z]{4}))?"
    r"(?:-(?P<region>[a-z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*)",
    re.IGNORECASE,
)
LANGUAGE_MAX = 35
TIMEZONE_MAX = 64
# Files in the zone database that are not zones a person lives in.
_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules"})


def check_language(value: str) -> str:
    """The tag in its canonical case (`pt-BR`, `zh-Hant-TW`); ValueError says why it is refused.

    `en_US` is read as `en-US` (the POSIX spelling people paste from their systems).
    """
    text = value.strip().replace("_", "-")
    if not text:
        raise ValueError("the language is empty")
    match = _TAG.fullmatch(text) if len(text) <= LANGUAGE_MAX else None
    if match is None:
        raise ValueError(f"{value[:40]!r} is not a language tag like en, de-CH or pt-BR")
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    if match["variants"]:
        parts.append(match["variants"][1:].lower())
    return "-".join(parts)


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Lower-cased name -> IANA name, for every zone in the system's (or tzdata's) database."""
    return {
        name.lower(): name
        for name in zoneinfo.available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    }


def check_timezone(value: str) -> str:
    """The IANA zone name as the database spells it (`Europe/Berlin`); ValueError when unknown."""
    text = value.strip()
    if not text:
        raise ValueError("the time zone is empty")
    name = _zones().get(text.lower()) if len(text) <= TIMEZONE_MAX else None
    if name is None:
        raise ValueError(f"{value[:40]!r} is not an IANA time zone like Europe/Berlin or America/New_York")
    return name


@lru_cache(maxsize=1)
def timezone_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """Zones a person picks from, grouped by region and named as people say them:
    [("Europe", [("Europe/Berlin", "Berlin"), …]), …, ("UTC", [("UTC", "UTC")])].

    Only Area/Location names (the ~420 canonical-looking ones a menu needs), plus UTC; the old
    aliases (US/Eastern, Etc/GMT+5…) stay accepted by check_timezone but are not offered."""
    regions: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(_zones().values()):
        region, _, place = name.partition("/")
        if not place or region in ("Etc", "SystemV", "US", "Brazil", "Canada", "Chile", "Mexico"):
            continue
        regions.setdefault(region, []).append((name, place.replace("_", " ").replace("/", " / ")))
    groups = sorted(regions.items())
    groups.append(("UTC", [("UTC", "UTC")]))
    return groups
