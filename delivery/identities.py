"""Sending identities: the from addresses (or whole domains) an admin allows, with their DKIM keys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from delivery import dkim
from delivery.headers import check_header_value
from delivery.models import SendingIdentity
from mailplatform import crypto
from mailplatform.errors import Invalid, model_checked
from mailplatform.services import audit_record


def identity_save(
    identity: SendingIdentity | None = None,
    *,
    address: str,
    dkim_selector: str = "",
    enabled: bool = True,
    by: Any = None,
) -> SendingIdentity:
    address = address.strip().lower()
    check_header_value(address, field="address")
    if "@" in address:
        try:
            validate_email(address)
        except ValidationError:
            raise Invalid(f"{address!r} is not a valid email address", field="address") from None
    elif not address or "." not in address or " " in address:
        raise Invalid(f"{address!r} is neither an email address nor a domain", field="address")
    identity = identity or SendingIdentity()
    creating = identity.pk is None
    identity.address = address
    identity.dkim_selector = dkim_selector.strip().lower()
    identity.enabled = enabled
    model_checked(identity)
    with transaction.atomic():
        identity.save()
        audit_record(by, "identity.created" if creating else "identity.updated", identity)
    return identity


def identity_generate_dkim(
    identity: SendingIdentity, *, selector: str | None = None, by: Any = None
) -> SendingIdentity:
    """A fresh 2048-bit key; the DNS record to publish is identity.dkim_dns_name / dkim_dns_value."""
    pem, public = dkim.generate_private_key()
    identity.dkim_selector = (selector or identity.dkim_selector or timezone.now().strftime("ph%Y%m")).lower()
    identity.dkim_private_key_encrypted = crypto.encrypt(pem)
    identity.dkim_public_key = public
    with transaction.atomic():
        identity.save()
        audit_record(by, "identity.dkim_generated", identity, details={"selector": identity.dkim_selector})
    return identity


def identity_for(from_email: str) -> SendingIdentity | None:
    """The identity that allows this from address: the exact address first, then its domain."""
    address = from_email.strip().lower()
    domain = address.rsplit("@", 1)[-1]
    found = {
        i.address: i for i in SendingIdentity.objects.filter(enabled=True, address__in=[address, domain])
    }
    return found.get(address) or found.get(domain)


def _default_domain() -> str:
    return settings.DELIVERY_DEFAULT_FROM_EMAIL.strip().lower().rsplit("@", 1)[-1]


def from_allowed(from_email: str) -> bool:
    """A read: would check_from allow this From now (a fresh install: only its default From's domain)?"""
    if identity_for(from_email) is not None:
        return True
    domain = from_email.strip().lower().rsplit("@", 1)[-1]
    return domain == _default_domain() and not SendingIdentity.objects.exists()


def platform_from_email() -> str:
    """The From of the platform's own mail (built-in confirmations, password resets): the
    organisation's default From (Settings > Organisation) when it is set and an enabled sending
    identity allows it now, else DELIVERY_DEFAULT_FROM_EMAIL (a From nobody may send from never
    replaces one that works)."""
    from mailplatform.selectors import org_data

    chosen = org_data()["from_email"].strip()
    default = settings.DELIVERY_DEFAULT_FROM_EMAIL
    if chosen and chosen.lower() != default.strip().lower() and identity_for(chosen) is not None:
        return chosen
    return default


def identity_ensure_default() -> SendingIdentity | None:
    """A fresh install's one identity: the domain of DELIVERY_DEFAULT_FROM_EMAIL, the From of the
    mail it sends through its capture relay (test sends, confirmations, password resets). Made by
    the first From check while no identity exists at all (an install upgraded from before the check
    gets it the same way), audited; an admin may disable it once they have their own."""
    if SendingIdentity.objects.exists():
        return None
    with transaction.atomic():
        identity, created = SendingIdentity.objects.get_or_create(address=_default_domain())
        if created:
            audit_record(None, "identity.created", identity, details={"default": True})
    return identity


def check_from(from_email: str, *, field: str = "from_email") -> SendingIdentity:
    """The identity that allows this From; refused (naming `field`) when none does.

    Marketing and transactional mail alike: a From whose address and domain are not an enabled
    sending identity never leaves (issue #12). A fresh install has one, for its default From.
    """
    identity_ensure_default()
    identity = identity_for(from_email)
    if identity is None:
        raise Invalid(from_refusal(from_email), field=field, code="from_not_allowed")
    return identity


def from_refusal(from_email: str) -> str:
    return (
        f"{from_email} is not an allowed sender: neither it nor its domain is a sending identity; "
        "add one under Delivery > Sending identities"
    )
