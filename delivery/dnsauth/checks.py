"""The checks themselves: what DNS says about a sending identity, the bounce domain and the
tracking domain, each as a list of items with the exact record to publish when one fails.

No database writes here (services.py stores the results); relays and identities come in as
arguments. Every item is pass, fail, warn (works, but weaker than it should be), info (optional
records, reported where present) or unknown (DNS did not answer: we cannot tell).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from delivery.dnsauth import spf
from delivery.dnsauth.lookup import DnsUnavailable, Lookup

PASS, FAIL, WARN, INFO, UNKNOWN = "pass", "fail", "warn", "info", "unknown"

# ESP relays send from their own address pools: their SPF include, by the relay host's suffix.
ESP_SPF_INCLUDES: tuple[tuple[str, str], ...] = (
    (".sendgrid.net", "sendgrid.net"),
    (".amazonaws.com", "amazonses.com"),
    (".mailgun.org", "mailgun.org"),
    (".postmarkapp.com", "spf.mtasv.net"),
    (".sparkpostmail.com", "sparkpostmail.com"),
    (".mailjet.com", "spf.mailjet.com"),
    (".brevo.com", "spf.brevo.com"),
    (".sendinblue.com", "spf.sendinblue.com"),
    (".gmail.com", "_spf.google.com"),
    (".office365.com", "spf.protection.outlook.com"),
    (".outlook.com", "spf.protection.outlook.com"),
)
# Second-level public suffixes common enough to matter for the organisational domain (DMARC
# relaxed alignment). Without the Public Suffix List this is an approximation: see README.
TWO_LABEL_SUFFIXES = {
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp",
    "ne.jp", "or.jp", "ac.jp", "co.za", "com.br", "com.cn", "com.mx", "co.in", "co.kr", "com.tr",
    "com.sg", "com.hk", "co.il", "com.ar", "com.tw",
}  # fmt: skip


@dataclass(frozen=True)
class Item:
    key: str
    label: str
    status: str
    detail: str
    record_name: str = ""
    record_type: str = ""
    record_value: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class RelaySender:
    """What SPF must allow for one relay: an ESP's include, or the relay host's addresses."""

    name: str
    host: str


def org_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(a: str, b: str, mode: str = "r") -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(
                name.strip().lower(), re.sub(r"\s+", "", value) if name.strip() == "p" else value.strip()
            )
    return tags


def _esp_include(host: str) -> str | None:
    host = host.lower().rstrip(".")
    for suffix, include in ESP_SPF_INCLUDES:
        if host.endswith(suffix) or host == suffix.lstrip("."):
            return include
    return None


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def _unknown(key: str, label: str, exc: DnsUnavailable) -> Item:
    return Item(key, label, UNKNOWN, f"DNS did not answer, so this could not be checked: {exc}")


# --- SPF ---


def spf_item(lookup: Lookup, domain: str, relays: Sequence[RelaySender], *, key: str = "spf") -> Item:
    label = f"SPF for {domain} allows every relay, within 10 lookups"
    try:
        try:
            record = spf.spf_record(lookup, domain)
        except spf.SpfError as exc:
            return Item(key, label, FAIL, f"{exc}. Merge them into one.", domain, "TXT", "")
        needed: list[str] = []
        missing: list[str] = []
        unchecked: list[str] = []
        cost = spf.cost(lookup, domain) if record else spf.SpfCost(0, frozenset())
        for relay in relays:
            include = _esp_include(relay.host)
            if include:
                mechanism = f"include:{include}"
                if include not in cost.includes:
                    needed.append(mechanism)
                    missing.append(f"{relay.name} ({mechanism})")
                continue
            addresses = [a for a in lookup.addresses(relay.host) if _public(a)]
            if not addresses:
                unchecked.append(relay.name)
                continue
            for address in addresses:
                if record is None or spf.check_host(lookup, domain, address) != "pass":
                    ip = ipaddress.ip_address(address)
                    needed.append(f"ip{ip.version}:{address}")
                    missing.append(f"{relay.name} ({address})")
    except spf.SpfError as exc:
        return Item(key, label, FAIL, f"The SPF policy is broken: {exc}.", domain, "TXT", "")
    except DnsUnavailable as exc:
        return _unknown(key, label, exc)
    needed = list(dict.fromkeys(needed))
    if record is None:
        value = spf.with_mechanisms(None, needed or ["mx"])
        return Item(key, label, FAIL, f"{domain} publishes no SPF record.", domain, "TXT", value)
    if missing:
        value = spf.with_mechanisms(record, needed)
        if _would_exceed(cost.lookups, needed):
            detail = f"It does not allow {', '.join(missing)}, and adding them would pass 10 lookups."
        else:
            detail = f"It does not allow {', '.join(missing)}."
        return Item(key, label, FAIL, detail, domain, "TXT", value)
    if cost.lookups > spf.MAX_LOOKUPS:  # cost() raises first; kept for clarity
        return Item(key, label, FAIL, f"{cost.lookups} lookups (at most 10).", domain, "TXT", "")
    note = f" Relays with no public address to check: {', '.join(unchecked)}." if unchecked else ""
    return Item(key, label, PASS, f"{record} ({cost.lookups} of 10 lookups).{note}")


def _would_exceed(lookups: int, mechanisms: Iterable[str]) -> bool:
    return lookups + sum(1 for m in mechanisms if m.startswith("include:")) > spf.MAX_LOOKUPS


# --- DKIM ---


def dkim_item(lookup: Lookup, domain: str, selector: str, public_key: str, dns_value: str) -> Item:
    label = f"DKIM key in DNS matches the stored key for {domain}"
    if not selector or not public_key:
        return Item("dkim", label, FAIL, "No DKIM key yet: generate one on the relays page, then publish it.")
    name = f"{selector}._domainkey.{domain}"
    try:
        records = [r for r in lookup.txt(name) if "p=" in r]
    except DnsUnavailable as exc:
        return _unknown("dkim", label, exc)
    if not records:
        return Item("dkim", label, FAIL, f"{name} has no DKIM record.", name, "TXT", dns_value)
    published = _tags(records[0]).get("p", "")
    if published != re.sub(r"\s+", "", public_key):
        why = "is revoked (empty p=)" if not published else "holds a different key"
        return Item("dkim", label, FAIL, f"{name} {why}.", name, "TXT", dns_value)
    return Item("dkim", label, PASS, f"{name} publishes the key mail is signed with.")


# --- DMARC ---


def dmarc_policy(lookup: Lookup, domain: str) -> tuple[str, dict[str, str]] | None:
    """(the domain it was found at, its tags): the From domain's, else its organisational domain's."""
    for where in dict.fromkeys([domain, org_domain(domain)]):
        records = [r for r in lookup.txt(f"_dmarc.{where}") if r.strip().lower().startswith("v=dmarc1")]
        if len(records) == 1:
            return where, _tags(records[0])
    return None


def dmarc_items(
    lookup: Lookup, domain: str, *, dkim_ok: bool, return_path: str, return_path_spf_ok: bool
) -> list[Item]:
    exists_label = f"DMARC policy published for {domain}"
    align_label = f"DMARC passes for mail From {domain} (DKIM or SPF aligned)"
    rp_label = f"Return path {return_path} aligns with {domain}"
    try:
        found = dmarc_policy(lookup, domain)
    except DnsUnavailable as exc:
        return [_unknown("dmarc", exists_label, exc)]
    items = []
    if found is None:
        value = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{org_domain(domain)}"
        items.append(
            Item(
                "dmarc", exists_label, FAIL, "No DMARC record.", f"_dmarc.{org_domain(domain)}", "TXT", value
            )
        )
        adkim = aspf = "r"
    else:
        where, tags = found
        policy = tags.get("p", "")
        if policy not in ("none", "quarantine", "reject"):
            value = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{where}"
            items.append(
                Item(
                    "dmarc",
                    exists_label,
                    FAIL,
                    f"_dmarc.{where} has no valid p= tag.",
                    f"_dmarc.{where}",
                    "TXT",
                    value,
                )
            )
        else:
            items.append(Item("dmarc", exists_label, PASS, f"_dmarc.{where}: p={policy}."))
        adkim, aspf = tags.get("adkim", "r")[:1], tags.get("aspf", "r")[:1]
    rp_aligned = aligned(return_path, domain, aspf)
    # We sign with d= the identity's own domain, so DKIM aligns whenever the key checks out.
    dkim_aligned = dkim_ok and aligned(domain, domain, adkim)
    spf_aligned = rp_aligned and return_path_spf_ok
    if dkim_aligned or spf_aligned:
        how = " and ".join(w for w, ok in (("DKIM", dkim_aligned), ("SPF", spf_aligned)) if ok)
        items.append(Item("dmarc_alignment", align_label, PASS, f"Aligned by {how}."))
    else:
        items.append(
            Item(
                "dmarc_alignment",
                align_label,
                FAIL,
                "Neither DKIM (fix the DKIM record above) nor SPF on an aligned return path passes.",
            )
        )
    if rp_aligned:
        items.append(Item("return_path", rp_label, PASS, f"{return_path} is within {org_domain(domain)}."))
    else:
        suggestion = f"bounces.{org_domain(domain)}"
        items.append(
            Item(
                "return_path",
                rp_label,
                WARN if dkim_aligned else FAIL,
                f"Envelope senders are @{return_path}, outside {org_domain(domain)}, so SPF cannot align "
                f"(DMARC then rests on DKIM alone). Set BOUNCE_DOMAIN={suggestion} and publish its MX.",
                suggestion,
                "MX",
                "",
            )
        )
    return items


# --- Optional records: reported where present ---

OPTIONAL = (
    ("mta_sts", "MTA-STS", "_mta-sts.{d}", "v=stsv1"),
    ("tls_rpt", "TLS-RPT", "_smtp._tls.{d}", "v=tlsrptv1"),
    ("bimi", "BIMI", "default._bimi.{d}", "v=bimi1"),
)


def optional_items(lookup: Lookup, domain: str) -> list[Item]:
    items = []
    for key, label, pattern, prefix in OPTIONAL:
        name = pattern.format(d=domain)
        try:
            records = [r for r in lookup.txt(name) if r.strip().lower().startswith(prefix)]
        except DnsUnavailable as exc:
            items.append(_unknown(key, label, exc))
            continue
        detail = f"{name}: {records[0]}" if records else f"Not published at {name} (optional)."
        items.append(Item(key, label, INFO, detail))
    return items


# --- Per subject ---


def identity_items(
    lookup: Lookup,
    *,
    domain: str,
    dkim_selector: str,
    dkim_public_key: str,
    dkim_dns_value: str,
    relays: Sequence[RelaySender],
    return_path: str,
) -> list[Item]:
    items = [spf_item(lookup, domain, relays)]
    dkim = dkim_item(lookup, domain, dkim_selector, dkim_public_key, dkim_dns_value)
    items.append(dkim)
    rp_spf = spf_item(lookup, return_path, relays)
    items += dmarc_items(
        lookup,
        domain,
        dkim_ok=dkim.status == PASS,
        return_path=return_path,
        return_path_spf_ok=rp_spf.status == PASS,
    )
    return items + optional_items(lookup, domain)


def bounce_items(lookup: Lookup, *, domain: str, mx_host: str, relays: Sequence[RelaySender]) -> list[Item]:
    items = [spf_item(lookup, domain, relays)]
    label = f"MX of {domain} points at the bounce listener ({mx_host})"
    value = f"10 {mx_host}."
    try:
        exchanges = [host for _, host in lookup.mx(domain)]
        if not exchanges:
            items.append(Item("mx", label, FAIL, f"{domain} has no MX record.", domain, "MX", value))
        elif mx_host in exchanges:
            items.append(Item("mx", label, PASS, f"MX {', '.join(exchanges)}."))
        else:
            wanted = set(lookup.addresses(mx_host))
            if wanted and any(wanted & set(lookup.addresses(h)) for h in exchanges):
                items.append(
                    Item("mx", label, PASS, f"MX {', '.join(exchanges)} (same address as {mx_host}).")
                )
            else:
                detail = f"MX names {', '.join(exchanges)}, not {mx_host}: bounces go elsewhere."
                items.append(Item("mx", label, FAIL, detail, domain, "MX", value))
    except DnsUnavailable as exc:
        items.append(_unknown("mx", label, exc))
    return items


def tracking_items(lookup: Lookup, *, domain: str) -> list[Item]:
    label = f"Tracking domain {domain} resolves"
    try:
        ipaddress.ip_address(domain)
        return [Item("resolves", label, PASS, f"{domain} is an address; nothing to resolve.")]
    except ValueError:
        pass
    try:
        addresses = lookup.addresses(domain)
    except DnsUnavailable as exc:
        return [_unknown("resolves", label, exc)]
    if not addresses:
        value = "<this server's public IP address>"
        return [Item("resolves", label, FAIL, f"{domain} has no A or AAAA record.", domain, "A", value)]
    return [Item("resolves", label, PASS, f"{domain} → {', '.join(addresses)}.")]


def overall(items: Sequence[Item]) -> str:
    """fail if any item fails, unknown if DNS could not tell, else pass (warn and info don't fail)."""
    statuses = {i.status for i in items}
    if FAIL in statuses:
        return FAIL
    if UNKNOWN in statuses:
        return UNKNOWN
    return PASS
