"""Outbound webhook HTTP: signing, the address check against SSRF, one POST.

The signature header reads `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the endpoint's
secret; receivers recompute it and reject old timestamps, as with Stripe's scheme.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

EVENT_TYPES = ("bounced", "complained", "unsubscribed", "delivered", "opened", "clicked", "subscribed")
SIGNATURE_HEADER = "Posthorn-Signature"
MAX_RESPONSE_BYTES = 1000


class UnsafeURL(ValueError):
    """The URL is not one the platform will post to (scheme, or an address it must not reach)."""


class UnresolvableHost(UnsafeURL):
    """The host has no address now; a subscription may still be made (DNS may come later)."""


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    body: str
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: int | None = None) -> bool:
    """What a receiver does; used by the tests and offered to Python integrators."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or int(time.time())) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, Teredo), which is where a
    connection to it ends up; None when it carries none."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not (inner.is_global and not inner.is_multicast):
            return False
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> tuple[str, int, str]:
    """Parse `url` and resolve its host; returns (host, port, address to connect to) or raises UnsafeURL.

    Resolution happens here and the connection goes to the address checked, so a DNS answer that
    changes between check and connect (rebinding) cannot redirect the request inside the network.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeURL("the URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("the URL's port is not a number between 0 and 65535") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"the host {parts.hostname} does not resolve") from exc
    addresses = [info[4][0] for info in infos]
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        blocked = [a for a in addresses if not _address_allowed(a)]
        if blocked:
            raise UnsafeURL(
                f"the host {parts.hostname} resolves to a private, loopback or reserved address ({blocked[0]})"
            )
    return parts.hostname, port, addresses[0]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> PostResult:
    """POST once; never follows redirects (a 3xx is a failed delivery, not a new target)."""
    try:
        host, port, address = check_url(url)
    except UnsafeURL as exc:
        return PostResult(None, "", str(exc))
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(host, port, timeout=timeout)

    def connect_to_checked_address(_address, timeout=None, source_address=None):
        return socket.create_connection((address, port), timeout, source_address)

    # Certificate checks and SNI still use the host name; only the TCP target is pinned.
    connection._create_connection = connect_to_checked_address  # type: ignore[attr-defined]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(MAX_RESPONSE_BYTES).decode("utf-8", "replace")
        return PostResult(response.status, text, "")
    except (OSError, http.client.HTTPException) as exc:
        return PostResult(None, "", f"{type(exc).__name__}: {exc}"[:500])
    finally:
        connection.close()
