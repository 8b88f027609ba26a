"""Signed links for the public pages: HMAC-SHA256 keyed by SECRET_KEY (django.core.signing).

A token names one contact or subscription and cannot be forged or walked; a wrong or altered
token and a token for a row that no longer exists look the same to the visitor.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

_PREFERENCES_SALT = "posthorn.contacts.preferences"
_CONFIRM_SALT = "posthorn.contacts.confirm"


def _signer(salt: str) -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=salt, algorithm="sha256")


def preferences_token(contact_id: int) -> str:
    # Unversioned and without expiry: it goes in every mail and must work for years.
    return signing.Signer(salt=_PREFERENCES_SALT, algorithm="sha256").sign(
        signing.b62_encode(int(contact_id))
    )


def preferences_contact_id(token: str) -> int | None:
    try:
        value = signing.Signer(salt=_PREFERENCES_SALT, algorithm="sha256").unsign(token)
        return signing.b62_decode(value)
    except (signing.BadSignature, ValueError):
        return None


def confirm_token(subscription_id: int) -> str:
    return _signer(_CONFIRM_SALT).sign(signing.b62_encode(int(subscription_id)))


def confirm_subscription_id(token: str) -> int | None:
    max_age = settings.CONTACTS_CONFIRM_MAX_AGE_DAYS * 86400
    try:
        return signing.b62_decode(_signer(_CONFIRM_SALT).unsign(token, max_age=max_age))
    except (signing.BadSignature, ValueError):
        return None


def preferences_url(contact_id: int) -> str:
    """Absolute URL of the contact's preference centre, for the footer of every mail."""
    return settings.SITE_URL + reverse("contacts:preferences", args=[preferences_token(contact_id)])


def confirm_url(subscription_id: int) -> str:
    """Absolute URL that confirms a double opt-in subscription (valid CONTACTS_CONFIRM_MAX_AGE_DAYS)."""
    return settings.SITE_URL + reverse("contacts:confirm", args=[confirm_token(subscription_id)])
