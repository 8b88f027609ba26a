"""Address syntax, by email-validator's rules (no DNS), with a fast path for plain ASCII.

A million-row import calls this a million times; email-validator costs ~20 µs an address.
The fast path accepts only addresses it is sure email-validator accepts too (plain dot-atom
local part, LDH labels, an alphabetic TLD that is not special-use, no IDNA) and hands every
other address to email-validator, so the two cannot disagree on what is valid.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from email_validator import EmailNotValidError, validate_email

from contacts.models import FieldType
from mailplatform.errors import Invalid
from mailplatform.locales import check_language, check_timezone

# email-validator refuses these (RFC 6761 and friends) unless told otherwise.
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})
# The whole fast path in one pattern, so that an import's hot loop pays one C call an address: a
# plain dot-atom local part of at most 64 characters, LDH labels none of which is IDNA-like
# (no "--" in a label's third and fourth places, as "xn--"), an alphabetic TLD that is not special-use. The total length (254) is
# checked by the caller.
FAST_ADDRESS = re.compile(
    r"(?=[^@]{1,64}@)(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:(?![A-Za-z0-9-]{2}--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
    + "".join(f"(?<!\\.(?i:{name}))" for name in sorted(_SPECIAL_USE))
)


class EmailError(Invalid):
    """Not a valid address; the message says why."""

    default_code = "invalid_email"
    default_field = "email"


def _fast(address: str) -> str | None:
    """The normalised address when the fast path is sure of it (the caller has stripped it)."""
    match = FAST_ADDRESS.fullmatch(address)
    if match is None or len(address) > 254:
        return None
    return f"{match['local']}@{match['domain'].lower()}"


def check_email(value: str) -> str:
    """The address, normalised as email-validator does (domain lower-cased); EmailError if invalid."""
    address = value.strip()
    if not address:
        raise EmailError("the address is empty")
    fast = _fast(address)
    if fast is not None:
        return fast
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise EmailError(str(exc)) from None


def check_contact_language(value: str) -> str:
    """A contact's language: a BCP 47 tag in canonical case, or "" (the install's default)."""
    try:
        return check_language(value) if value.strip() else ""
    except ValueError as exc:
        raise Invalid(str(exc), code="invalid_language", field="language") from None


def check_contact_timezone(value: str) -> str:
    """A contact's time zone: an IANA name, or "" (the install's default)."""
    try:
        return check_timezone(value) if value.strip() else ""
    except ValueError as exc:
        raise Invalid(str(exc), code="invalid_timezone", field="timezone") from None


def coerce_value(kind: str, raw: Any) -> Any:
    """A field value as stored in attributes; ValueError names what was expected."""
    if raw is None:
        return None
    if kind == FieldType.TEXT:
        return str(raw)
    text = str(raw).strip()
    if text == "":
        return None
    if kind == FieldType.NUMBER:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            number = float(text.replace(",", "")) if not isinstance(raw, int | float) else raw
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a number") from None
        if isinstance(number, float) and (number != number or number in (float("inf"), float("-inf"))):
            raise ValueError(f"{text[:40]!r} is not a finite number")
        return (
            int(number)
            if isinstance(number, float) and number.is_integer() and abs(number) < 2**53
            else number
        )
    if kind == FieldType.BOOLEAN:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "y", "on", "t"):
            return True
        if lowered in ("0", "false", "no", "n", "off", "f"):
            return False
        raise ValueError(f"{text[:40]!r} is not yes/no")
    if kind == FieldType.DATE:
        try:
            return dt.date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a date (YYYY-MM-DD)") from None
    raise ValueError(f"unknown field type {kind}")


# Role addresses (a function, not a person: often many readers, often complaints) and well-known
# disposable-address domains. Flagged, not refused: the marketer chooses (a signup form may refuse
# them). The domain list is a short built-in one, not a maintained feed.
ROLE_LOCAL_PARTS = frozenset(
    "abuse admin administrator billing contact help hostmaster info mail marketing no-reply noc noreply "
    "office postmaster root sales security support team webmaster".split()
)
DISPOSABLE_DOMAINS = frozenset(
    "10minutemail.com 20minutemail.com discard.email dispostable.com emailondeck.com fakeinbox.com "
    "getairmail.com getnada.com guerrillamail.com guerrillamail.net guerrillamailblock.com maildrop.cc "
    "mailinator.com mailnesia.com mintemail.com mohmal.com mytemp.email sharklasers.com spamgourmet.com "
    "temp-mail.org tempmail.com tempmail.net tempmailo.com throwawaymail.com trashmail.com "
    "yopmail.com yopmail.net".split()
)


def address_flags(email: str) -> list[str]:
    """["role"] for postmaster@, info@ …; ["disposable"] for a throwaway domain; both, or none."""
    local, _, domain = email.strip().lower().rpartition("@")
    flags = []
    if local.split("+")[0] in ROLE_LOCAL_PARTS:
        flags.append("role")
    if domain in DISPOSABLE_DOMAINS:
        flags.append("disposable")
    return flags
