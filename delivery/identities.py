"""Sending identities: the from addresses (or whole domains) an admin allows, with their DKIM keys."""

from __future__ import annotations

from typing import Any

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


def check_from(from_email: str) -> SendingIdentity | None:
    """Once an admin has configured any identity, from addresses must match one."""
    identity = identity_for(from_email)
    if identity is None and SendingIdentity.objects.filter(enabled=True).exists():
        raise Invalid(
            f"{from_email} is not an allowed sender: add it (or its domain) under Delivery > Sending identities",
            field="from_email",
        )
    return identity
