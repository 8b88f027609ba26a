"""The signed VERP return path: `bounces+<token>@<BOUNCE_DOMAIN>` names one Message.

The token is the Message id in base 36 and 40 bits of an HMAC over it, lowercase, so it
survives MTAs that change the case of local parts and leaks nothing about the recipient.
A token whose HMAC does not match is refused (None): a forged bounce changes nothing.
The same scheme signs the mailto: unsubscribe address and the one-click unsubscribe URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.conf import settings

_MAC_BYTES = 5  # 40 bits: 8 base32 characters
_TOKEN = re.compile(r"^([0-9a-z]{1,13})-([a-z2-7]{8})$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=8)
def _key(purpose: str, secret: str) -> bytes:
    return hashlib.sha256(f"posthorn-verp:{purpose}:".encode() + secret.encode()).digest()


# Lower-case base32 (RFC 4648's alphabet) of 10 bits at a time: 40 bits are four look-ups.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def _b32_40(digest: bytes) -> str:
    """base64.b32encode(digest[:5]).decode().lower(), without its general machinery."""
    n = int.from_bytes(digest[:_MAC_BYTES], "big")
    pairs = _B32_PAIRS
    return pairs[n >> 30] + pairs[(n >> 20) & 1023] + pairs[(n >> 10) & 1023] + pairs[n & 1023]


@lru_cache(maxsize=8)
def _pads(purpose: str, secret: str) -> tuple[Any, Any]:
    """SHA-256 states after the key's inner and outer pads (RFC 2104), once per key."""
    key = _key(purpose, secret).ljust(64, b"\0")  # a 32-byte key is padded to the 64-byte block
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in key)),
        hashlib.sha256(bytes(b ^ 0x5C for b in key)),
    )


def _mac(purpose: str, message_id: int, secret: str | None = None) -> str:
    # HMAC-SHA256 from copies of the padded key's states: the same bytes as hmac.new(key, ...)
    # at a quarter of its cost (~1.3 us against ~5.8), which a send pays three times per message
    # (return path, unsubscribe, Message-ID).
    return _mac_from(_pads(purpose, secret if secret is not None else settings.SECRET_KEY), message_id)


def _mac_from(pads: tuple[Any, Any], message_id: int) -> str:
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(str(message_id).encode())
    outer.update(inner.digest())
    return _b32_40(outer.digest())


@lru_cache(maxsize=4096)
def base36(number: int) -> str:
    # Cached: a message's id is put in base 36 for each of its tokens, at the moment it is sent.
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
    # Tokens minted before a key rotation stay valid while the old key is in SECRET_KEY_FALLBACKS:
    # mail already out (bounces, unsubscribe links, tracking) keeps working.
    for secret in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())):
        if hmac.compare_digest(match.group(2), _mac(purpose, message_id, secret)):
            return message_id
    return None


def message_tokens(message_ids: Iterable[int], purpose: str = "bounce") -> dict[int, str]:
    """message_token of each id, the key looked up once (a send's batch: hundreds at a time)."""
    pads = _pads(purpose, settings.SECRET_KEY)
    tokens = {}
    for message_id in message_ids:
        if message_id < 0:
            raise ValueError("message ids are positive")
        tokens[message_id] = f"{base36(message_id)}-{_mac_from(pads, message_id)}"
    return tokens


def verp_address(message_id: int) -> str:
    return f"bounces+{message_token(message_id)}@{settings.BOUNCE_DOMAIN}"


def verp_addresses(message_ids: Iterable[int]) -> dict[int, bytes]:
    """verp_address of each id, encoded for the SMTP envelope."""
    domain = settings.BOUNCE_DOMAIN
    return {i: f"bounces+{token}@{domain}".encode() for i, token in message_tokens(message_ids).items()}


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
