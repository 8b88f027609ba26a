"""Probes answered before the rest of the middleware; the client's address behind a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ProbeMiddleware:
    """/healthz and /readyz answer whatever the Host header: orchestrators probe by the pod or
    container address, which ALLOWED_HOSTS rightly does not list. Nothing else skips the host check."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in ("/healthz", "/readyz"):
            from mailplatform import views

            return (views.healthz if request.path == "/healthz" else views.readyz)(request)
        return self.get_response(request)


@cache
def _trusted_networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


class ClientAddressMiddleware:
    """REMOTE_ADDR becomes the client's address when the peer is a proxy named in TRUSTED_PROXIES.

    X-Forwarded-For is read from the right: each hop a trusted proxy appended is skipped, and the
    first address that no trusted proxy vouches for is the client (anything left of it was written
    by the client itself and could be anything). With no trusted proxy (the default) the header is
    ignored: everything that limits or records by address (login throttle, subscribe form, consent)
    sees the real peer.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        networks = _trusted_networks(tuple(settings.TRUSTED_PROXIES))
        peer = request.META.get("REMOTE_ADDR", "")
        if networks and _is_trusted(peer, networks):
            hops = [
                hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()
            ]
            client = peer
            while hops:
                hop = hops.pop()
                client = hop
                if not _is_trusted(hop, networks):
                    break
            try:
                request.META["REMOTE_ADDR"] = str(ipaddress.ip_address(client))
            except ValueError:
                pass  # a malformed header: keep the proxy's own address
        return self.get_response(request)
