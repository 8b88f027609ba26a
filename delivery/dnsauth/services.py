"""Run the DNS checks and store the latest result per subject (the only writes to dnsauth's table)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from delivery.dnsauth import checks
from delivery.dnsauth.lookup import Lookup
from delivery.dnsauth.models import DomainCheck
from delivery.models import Relay, SendingIdentity

log = logging.getLogger(__name__)


def _relay_senders() -> list[checks.RelaySender]:
    return [checks.RelaySender(r.name, r.host) for r in Relay.objects.filter(enabled=True).order_by("name")]


def tracking_domain() -> str:
    """Tracking and unsubscribe links are absolute URLs on SITE_URL (delivery.tracking)."""
    return (urlsplit(settings.SITE_URL).hostname or "localhost").lower()


def _store(
    subject: str, domain: str, items: list[checks.Item], identity: SendingIdentity | None = None
) -> DomainCheck:
    values = {
        "status": checks.overall(items),
        "items": [i.as_dict() for i in items],
        "checked_at": timezone.now(),
        "domain": domain,
    }
    with transaction.atomic():
        if identity is not None:
            row, _ = DomainCheck.objects.update_or_create(
                identity=identity, defaults={"subject": subject, **values}
            )
        else:
            row, _ = DomainCheck.objects.update_or_create(
                subject=subject, domain=domain, identity=None, defaults=values
            )
    return row


def dns_check_identity(identity: SendingIdentity, *, lookup: Lookup | None = None) -> DomainCheck:
    lookup = lookup or Lookup()
    items = checks.identity_items(
        lookup,
        domain=identity.domain,
        dkim_selector=identity.dkim_selector,
        dkim_public_key=identity.dkim_public_key,
        dkim_dns_value=identity.dkim_dns_value,
        relays=_relay_senders(),
        return_path=settings.BOUNCE_DOMAIN,
    )
    return _store(DomainCheck.Subject.IDENTITY, identity.domain, items, identity)


def dns_check_bounce_domain(*, lookup: Lookup | None = None) -> DomainCheck:
    lookup = lookup or Lookup()
    domain = settings.BOUNCE_DOMAIN
    items = checks.bounce_items(
        lookup, domain=domain, mx_host=settings.BOUNCE_MX_HOST, relays=_relay_senders()
    )
    # a bounce domain that moved leaves its old row behind: only the current one is shown
    DomainCheck.objects.filter(subject=DomainCheck.Subject.BOUNCE).exclude(domain=domain).delete()
    return _store(DomainCheck.Subject.BOUNCE, domain, items)


def dns_check_tracking_domain(*, lookup: Lookup | None = None) -> DomainCheck:
    lookup = lookup or Lookup()
    domain = tracking_domain()
    DomainCheck.objects.filter(subject=DomainCheck.Subject.TRACKING).exclude(domain=domain).delete()
    return _store(DomainCheck.Subject.TRACKING, domain, checks.tracking_items(lookup, domain=domain))


def dns_checks_run() -> dict[str, int]:
    """Every enabled identity, the bounce domain and the tracking domain, with one answer cache."""
    lookup = Lookup()
    counts = {"pass": 0, "fail": 0, "unknown": 0}
    rows = [dns_check_identity(i, lookup=lookup) for i in SendingIdentity.objects.filter(enabled=True)]
    rows += [dns_check_bounce_domain(lookup=lookup), dns_check_tracking_domain(lookup=lookup)]
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    log.info("DNS checks: %s (%d queries)", counts, lookup.queries)
    return counts
