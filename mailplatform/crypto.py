"""Secrets the platform must read back (relay and bounce mailbox passwords, DKIM private keys,
webhook signing secrets): Fernet with rotatable keys, one set for every app.

Keys come from ENCRYPTION_KEYS (newest first). Without any, one is derived from SECRET_KEY so a
fresh install works; an admin who sets real keys later runs `manage.py rotate_keys`, which
re-encrypts every stored secret (each model field named `*_encrypted`) with the newest key.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet


class SecretUnreadable(Exception):
    """A stored secret was encrypted with a key that is no longer configured."""


def _derived_key() -> bytes:
    # (The label predates the move from delivery; changing it would make stored secrets unreadable.)
    digest = hashlib.sha256(b"posthorn-delivery-secrets:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    keys = [key.encode() for key in settings.ENCRYPTION_KEYS] or [_derived_key()]
    # The derived key stays readable after real keys are configured, so rotation can read old rows.
    if settings.ENCRYPTION_KEYS:
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
            "a stored secret cannot be decrypted with ENCRYPTION_KEYS: was a key removed?"
        ) from None


def rotate(token: str) -> str:
    """The same secret encrypted with the newest key."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("a stored secret cannot be decrypted with any configured key") from None


def _rotate_column(rows: QuerySet, field: str) -> int:
    """Re-encrypt `field` of every row with the newest key (inside the caller's transaction)."""
    count = 0
    for row in rows.select_for_update().exclude(**{field: ""}):
        setattr(row, field, rotate(getattr(row, field)))
        row.save(update_fields=[field])
        count += 1
    return count


def secret_columns() -> list[tuple[type, str]]:
    """(model, field name) of every stored secret: by convention, a field named `*_encrypted`."""
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.name.endswith("_encrypted")
    ]


def rotate_all() -> int:
    """Every stored secret re-encrypted with the newest key, in one transaction."""
    with transaction.atomic():
        return sum(_rotate_column(model.objects.all(), field) for model, field in secret_columns())
