"""SPF (RFC 7208) as far as the checks need it: is an address authorised, which domains does the
policy include, and how many DNS lookups does it cost a receiver (at most 10, or it is a
permanent error and SPF fails for everyone).

Macros (%{...}) are not expanded: a mechanism using one never matches here (its lookup still
counts). `ptr` counts and never matches (RFC 7208 5.5 says not to use it).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from delivery.dnsauth.lookup import Lookup

MAX_LOOKUPS = 10  # RFC 7208 4.6.4
MAX_MX_NAMES = 10
MAX_DEPTH = 12  # include/redirect chains; a loop ends here even without the lookup limit

TERM_RE = re.compile(
    r"^([-+~?]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?::([^/]*))?(?:/(\d{1,3}))?(?://(\d{1,3}))?$", re.I
)
MODIFIER_RE = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.I)
RESULT_OF = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class SpfError(Exception):
    """A permanent error in the policy (syntax, more than one record, over the lookup limit)."""


def spf_record(lookup: Lookup, domain: str) -> str | None:
    records = [t for t in lookup.txt(domain) if re.match(r"(?i)^v=spf1(?:\s|$)", t.strip())]
    if len(records) > 1:
        raise SpfError(f"{domain} publishes {len(records)} SPF records; receivers reject them all")
    return records[0].strip() if records else None


@dataclass
class _Walk:
    lookups: int = 0
    includes: set[str] = field(default_factory=set)

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfError(f"more than {MAX_LOOKUPS} DNS lookups")


def _terms(record: str) -> tuple[list[tuple[str, str, str, int | None, int | None]], str | None]:
    """(qualifier, mechanism, argument, ip4 prefix, ip6 prefix) per mechanism; the redirect."""
    mechanisms = []
    redirect = None
    for term in record.split()[1:]:
        match = TERM_RE.match(term)
        if match:
            qualifier, name, arg, p4, p6 = match.groups()
            mechanisms.append(
                (qualifier or "+", name.lower(), arg or "", int(p4) if p4 else None, int(p6) if p6 else None)
            )
            continue
        modifier = MODIFIER_RE.match(term)
        if not modifier:
            raise SpfError(f"unknown term {term!r}")
        if modifier.group(1).lower() == "redirect":
            redirect = modifier.group(2)
    return mechanisms, redirect


def _in_network(ip: ipaddress._BaseAddress, address: str, p4: int | None, p6: int | None) -> bool:
    try:
        candidate = ipaddress.ip_address(address)
    except ValueError:
        return False
    if candidate.version != ip.version:
        return False
    prefix = (p4 if p4 is not None else 32) if ip.version == 4 else (p6 if p6 is not None else 128)
    return ip in ipaddress.ip_network(f"{candidate}/{prefix}", strict=False)


def _check(lookup: Lookup, domain: str, ip: ipaddress._BaseAddress, walk: _Walk, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise SpfError("include or redirect chain too deep (a loop?)")
    record = spf_record(lookup, domain)
    if record is None:
        return "none"
    mechanisms, redirect = _terms(record)
    for qualifier, name, arg, p4, p6 in mechanisms:
        target = arg or domain
        matched = False
        if name == "all":
            matched = True
        elif name in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(f"{arg}/{p4}" if p4 is not None else arg, strict=False)
            except ValueError as exc:
                raise SpfError(f"bad {name} {arg!r}") from exc
            matched = ip.version == network.version and ip in network
        elif name in ("a", "mx", "include", "exists", "ptr"):
            walk.spend()
            if "%" in target or name == "ptr":
                continue
            if name == "a":
                matched = any(_in_network(ip, a, p4, p6) for a in lookup.addresses(target))
            elif name == "mx":
                hosts = [host for _, host in lookup.mx(target)][:MAX_MX_NAMES]
                matched = any(_in_network(ip, a, p4, p6) for h in hosts for a in lookup.addresses(h))
            elif name == "exists":
                matched = bool(lookup.addresses(target, ipv6=False))
            else:
                walk.includes.add(target.lower())
                inner = _check(lookup, target, ip, walk, depth + 1)
                if inner == "none":
                    raise SpfError(f"include:{target} has no SPF record")
                matched = inner == "pass"
        if matched:
            return RESULT_OF[qualifier]
    if redirect:
        walk.spend()
        walk.includes.add(redirect.lower())
        result = _check(lookup, redirect, ip, walk, depth + 1)
        if result == "none":
            raise SpfError(f"redirect={redirect} has no SPF record")
        return result
    return "neutral"


def check_host(lookup: Lookup, domain: str, address: str) -> str:
    """pass, fail, softfail, neutral, none or permerror for mail from `address`."""
    try:
        return _check(lookup, domain, ipaddress.ip_address(address), _Walk(), 0)
    except SpfError:
        return "permerror"


@dataclass(frozen=True)
class SpfCost:
    lookups: int
    includes: frozenset[str]


def cost(lookup: Lookup, domain: str) -> SpfCost:
    """Every lookup a receiver may have to make, whatever the address (no early match), and every
    domain included or redirected to. Raises SpfError for a broken or over-limit policy."""
    walk = _Walk()

    def visit(name: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise SpfError("include or redirect chain too deep (a loop?)")
        record = spf_record(lookup, name)
        if record is None:
            if depth:
                raise SpfError(f"{name} (included) has no SPF record")
            return
        mechanisms, redirect = _terms(record)
        for _qualifier, mechanism, arg, _p4, _p6 in mechanisms:
            if mechanism in ("a", "mx", "include", "exists", "ptr"):
                walk.spend()
                target = (arg or name).lower()
                if mechanism == "mx" and "%" not in target:
                    if len(lookup.mx(target)) > MAX_MX_NAMES:
                        raise SpfError(f"mx:{target} names more than {MAX_MX_NAMES} hosts")
                if mechanism == "include" and "%" not in target:
                    walk.includes.add(target)
                    visit(target, depth + 1)
        if redirect:
            walk.spend()
            walk.includes.add(redirect.lower())
            visit(redirect, depth + 1)

    visit(domain, 0)
    return SpfCost(walk.lookups, frozenset(walk.includes))


def with_mechanisms(record: str | None, mechanisms: list[str]) -> str:
    """The record to publish: the current one with the missing mechanisms before its `all` (or a
    redirect), or a new one ending in ~all."""
    if not record:
        return " ".join(["v=spf1", *mechanisms, "~all"])
    terms = record.split()
    keep = [t for t in terms if t.lower() not in {m.lower() for m in mechanisms}]
    at = next(
        (
            i
            for i, t in enumerate(keep)
            if t.lstrip("+-~?").lower() == "all" or t.lower().startswith("redirect=")
        ),
        len(keep),
    )
    return " ".join(keep[:at] + mechanisms + keep[at:])
