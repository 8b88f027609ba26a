from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dnsauth.dns_server import ZoneServer

BOUNCE_DOMAIN = "bounces.shop.test"
MX_HOST = "mx.posthorn.test"
TRACKING_HOST = "links.shop.test"


@pytest.fixture
def dns_zone(settings) -> Iterator[ZoneServer]:
    """A loopback DNS server the checks ask (never the internet), with the platform's own names
    pointed at test domains."""
    with ZoneServer() as server:
        settings.DNS_NAMESERVERS = ["127.0.0.1"]
        settings.DNS_PORT = server.port
        settings.DNS_TIMEOUT_SECONDS = 2.0
        settings.BOUNCE_DOMAIN = BOUNCE_DOMAIN
        settings.BOUNCE_MX_HOST = MX_HOST
        settings.SITE_URL = f"https://{TRACKING_HOST}"
        yield server
