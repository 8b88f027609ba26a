"""Secrets at rest (relay passwords, DKIM private keys, bounce mailbox passwords): Fernet with rotatable keys.

Keys come from DELIVERY_ENCRYPTION_KEYS (newest first). Without any, one is derived from
SECRET_KEY so a fresh install works; an admin who sets real keys later rotates with
`manage.py relay_rotate_keys`, which re-encrypts every stored secret with the newest key.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db.models import QuerySet


class SecretUnreadable(Exception):
    """A stored secret was encrypted with a key that is no longer configured."""


def _derived_key() -> bytes:
    digest = hashlib.sha256(b"posthorn-delivery-secrets:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    keys = [key.encode() for key in settings.DELIVERY_ENCRYPTION_KEYS] or [_derived_key()]
    # The derived key stays readable after real keys are configured, so rotation can read old rows.
    if settings.DELIVERY_ENCRYPTION_KEYS:
        keys.append(_derived_key())
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(clear: str) -> str:
    if not clear:
        return ""
    return _fernet().encrypt(clear.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "a stored secret cannot be decrypted with DELIVERY_ENCRYPTION_KEYS: was a key removed?"
        ) from None


def rotate(token: str) -> str:
    """The same secret encrypted with the newest key."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("a stored secret cannot be decrypted with any configured key") from None


def rotate_column(rows: QuerySet, field: str) -> int:
    """Re-encrypt `field` of every row with the newest key (inside the caller's transaction)."""
    count = 0
    for row in rows.select_for_update().exclude(**{field: ""}):
        setattr(row, field, rotate(getattr(row, field)))
        row.save(update_fields=[field])
        count += 1
    return count
