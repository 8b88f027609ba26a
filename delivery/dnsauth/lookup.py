"""DNS lookups for the checks, through dnspython, with the resolver the settings name.

Answers are cached for one run of the checks (an SPF tree asks for the same names many times). A
name that does not exist and a name with no record of the type are both "nothing"; a server that
does not answer is `DnsUnavailable`: the check says it could not tell, never that a record is
missing. After one timeout the rest of the run fails fast instead of waiting on every query.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.resolver
from django.conf import settings

MAX_NAME = 253


class DnsUnavailable(Exception):
    """The resolver could not answer (timeout, SERVFAIL, refused): the truth is unknown."""


def make_resolver() -> dns.resolver.Resolver:
    if settings.DNS_NAMESERVERS:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(settings.DNS_NAMESERVERS)
    else:
        resolver = dns.resolver.Resolver()
    resolver.port = settings.DNS_PORT
    resolver.timeout = settings.DNS_TIMEOUT_SECONDS
    resolver.lifetime = settings.DNS_TIMEOUT_SECONDS
    resolver.cache = None  # the checks are about what DNS says now
    return resolver


def valid_name(name: str) -> bool:
    name = name.rstrip(".")
    if not name or len(name) > MAX_NAME:
        return False
    try:
        dns.name.from_text(name)
    except (dns.exception.DNSException, ValueError):
        return False
    return all(0 < len(label) <= 63 for label in name.split("."))


class Lookup:
    def __init__(self, resolver: dns.resolver.Resolver | None = None) -> None:
        self.resolver = resolver or make_resolver()
        self._cache: dict[tuple[str, str], list] = {}
        self._down = False
        self.queries = 0

    def _ask(self, name: str, rdtype: str) -> list:
        name = name.rstrip(".").lower()
        key = (name, rdtype)
        if key in self._cache:
            return self._cache[key]
        if self._down:
            raise DnsUnavailable("the DNS server did not answer earlier in this check")
        if not valid_name(name):
            self._cache[key] = []
            return []
        self.queries += 1
        try:
            answer = self.resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
            records = list(answer) if answer.rrset is not None else []
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            records = []
        except dns.resolver.LifetimeTimeout as exc:
            self._down = True
            raise DnsUnavailable(
                f"no answer for {name} {rdtype} within {self.resolver.lifetime:g} s"
            ) from exc
        except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
            raise DnsUnavailable(f"{name} {rdtype}: {exc}") from exc
        self._cache[key] = records
        return records

    def txt(self, name: str) -> list[str]:
        """Each TXT record as one string (its character-strings joined, as SPF and DKIM read it)."""
        return [
            b"".join(record.strings).decode("utf-8", errors="replace") for record in self._ask(name, "TXT")
        ]

    def addresses(self, name: str, *, ipv6: bool = True) -> list[str]:
        try:
            return [str(ipaddress.ip_address(name))]
        except ValueError:
            pass
        found = [record.address for record in self._ask(name, "A")]
        if ipv6:
            found += [record.address for record in self._ask(name, "AAAA")]
        return found

    def mx(self, name: str) -> list[tuple[int, str]]:
        return sorted(
            (record.preference, record.exchange.to_text(omit_final_dot=True).lower())
            for record in self._ask(name, "MX")
        )
