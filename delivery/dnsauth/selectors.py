"""Reads of the stored DNS checks: the checklist page, and a From address's standing for campaigns."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from delivery.dnsauth.models import DomainCheck
from delivery.models import SendingIdentity


def checklist() -> dict[str, object]:
    identities = list(
        SendingIdentity.objects.filter(enabled=True).select_related("dns_check").order_by("address")
    )
    rows = [(identity, getattr(identity, "dns_check", None)) for identity in identities]
    others = {c.subject: c for c in DomainCheck.objects.filter(identity__isnull=True)}
    return {
        "identities": rows,
        "bounce": others.get(DomainCheck.Subject.BOUNCE),
        "tracking": others.get(DomainCheck.Subject.TRACKING),
        "bounce_domain": settings.BOUNCE_DOMAIN,
        "interval_hours": round(settings.DNS_CHECK_SECONDS / 3600, 1),
    }


@dataclass(frozen=True)
class FromStanding:
    """status: pass, fail, unknown (DNS did not answer), unchecked, or none (no identity covers it)."""

    status: str
    domain: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.status == "fail"


def from_standing(from_email: str) -> FromStanding:
    address = from_email.strip().lower()
    domain = address.rsplit("@", 1)[-1]
    if not domain:
        return FromStanding("none")
    identities = {
        i.address: i
        for i in SendingIdentity.objects.filter(enabled=True, address__in=[address, domain]).select_related(
            "dns_check"
        )
    }
    identity = identities.get(address) or identities.get(domain)
    if identity is None:
        return FromStanding("none", domain)
    check = getattr(identity, "dns_check", None)
    if check is None:
        return FromStanding("unchecked", identity.domain)
    return FromStanding(check.status, identity.domain, [f["label"] for f in check.failures])
