"""The signed VERP return path: `bounces+<token>@<BOUNCE_DOMAIN>` names one Message.

The token is the Message id in base 36 and 40 bits of an HMAC over it, lowercase, so it
survives MTAs that change the case of local parts and leaks nothing about the recipient.
A token whose HMAC does not match is refused (None): a forged bounce changes nothing.
The same scheme signs the mailto: unsubscribe address and the one-click unsubscribe URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache

from django.conf import settings

_MAC_BYTES = 5  # 40 bits: 8 base32 characters
_TOKEN = re.compile(r"^([0-9a-z]{1,13})-([a-z2-7]{8})$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=8)
def _key(purpose: str, secret: str) -> bytes:
    return hashlib.sha256(f"posthorn-verp:{purpose}:".encode() + secret.encode()).digest()


def _mac(purpose: str, message_id: int) -> str:
    digest = hmac.new(_key(purpose, settings.SECRET_KEY), str(message_id).encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:_MAC_BYTES]).decode().lower()


def base36(number: int) -> str:
    if number == 0:
        return "0"
    out = []
    while number:
        number, rest = divmod(number, 36)
        out.append(_DIGITS[rest])
    return "".join(reversed(out))


def message_token(message_id: int, purpose: str = "bounce") -> str:
    if message_id < 0:
        raise ValueError("message ids are positive")
    return f"{base36(message_id)}-{_mac(purpose, message_id)}"


def message_id_from_token(token: str, purpose: str = "bounce") -> int | None:
    match = _TOKEN.match(token.strip().lower())
    if not match:
        return None
    message_id = int(match.group(1), 36)
    if not hmac.compare_digest(match.group(2), _mac(purpose, message_id)):
        return None
    return message_id


def verp_address(message_id: int) -> str:
    return f"bounces+{message_token(message_id)}@{settings.BOUNCE_DOMAIN}"


def unsubscribe_address(message_id: int) -> str:
    """The mailto: target of List-Unsubscribe; the bounce listener handles it on the same domain."""
    return f"unsubscribe+{message_token(message_id, 'unsubscribe')}@{settings.BOUNCE_DOMAIN}"


def _token_after(prefix: str, address: str) -> str | None:
    address = address.strip().strip("<>").lower()
    local, _, _domain = address.rpartition("@")
    if not local.startswith(prefix + "+"):
        return None
    return local[len(prefix) + 1 :]


def message_id_from_address(address: str) -> int | None:
    """The Message a bounce is for, from its envelope recipient; None when absent or forged."""
    token = _token_after("bounces", address or "")
    return message_id_from_token(token) if token else None


def message_id_from_unsubscribe_address(address: str) -> int | None:
    token = _token_after("unsubscribe", address or "")
    return message_id_from_token(token, "unsubscribe") if token else None


_SIGNED_MESSAGE_ID = re.compile(r"<?\s*([0-9a-z]{1,13}-[a-z2-7]{8})\.(\d{1,20})@[^>\s]+\s*>?")


def message_id_from_message_id_header(value: str) -> int | None:
    """The Message our own Message-ID header names (`<token.id@domain>`, compose.message_id_header);
    None unless its token is ours (HMAC) and names the same id. Feedback loops that return the
    original message carry it, so a complaint can be attributed without the return path."""
    match = _SIGNED_MESSAGE_ID.search((value or "").lower())
    if not match:
        return None
    message_id = message_id_from_token(match.group(1), "message-id")
    return message_id if message_id is not None and message_id == int(match.group(2)) else None
