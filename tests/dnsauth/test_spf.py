"""SPF evaluation and its lookup count, against a real DNS server on loopback."""

from __future__ import annotations

import pytest

from delivery.dnsauth import spf
from delivery.dnsauth.lookup import Lookup


@pytest.fixture
def lookup(dns_zone) -> Lookup:
    return Lookup()


def test_check_host_follows_ip_a_mx_include_and_redirect(dns_zone, lookup) -> None:
    dns_zone.add("shop.test", "TXT", "v=spf1 ip4:198.51.100.0/24 a:out.shop.test mx include:esp.test ~all")
    dns_zone.add("out.shop.test", "A", "203.0.113.7")
    dns_zone.add("shop.test", "MX", "10 mx1.shop.test")
    dns_zone.add("mx1.shop.test", "A", "203.0.113.25")
    dns_zone.add("esp.test", "TXT", "v=spf1 redirect=_spf.esp.test")
    dns_zone.add("_spf.esp.test", "TXT", "v=spf1 ip6:2001:db8::/32 -all")
    assert spf.check_host(lookup, "shop.test", "198.51.100.9") == "pass"
    assert spf.check_host(lookup, "shop.test", "203.0.113.7") == "pass"
    assert spf.check_host(lookup, "shop.test", "203.0.113.25") == "pass"
    assert spf.check_host(lookup, "shop.test", "2001:db8::5") == "pass"
    # the include's own -all is "no match" for the includer, whose ~all then decides
    assert spf.check_host(lookup, "shop.test", "192.0.2.1") == "softfail"
    assert spf.check_host(lookup, "nothing.test", "192.0.2.1") == "none"
    cost = spf.cost(lookup, "shop.test")
    assert (cost.lookups, cost.includes) == (4, frozenset({"esp.test", "_spf.esp.test"}))


def test_more_than_ten_lookups_is_a_permanent_error(dns_zone, lookup) -> None:
    dns_zone.add("big.test", "TXT", "v=spf1 " + " ".join(f"include:i{n}.test" for n in range(11)) + " -all")
    for n in range(11):
        dns_zone.add(f"i{n}.test", "TXT", f"v=spf1 ip4:192.0.2.{n} -all")
    with pytest.raises(spf.SpfError, match="more than 10"):
        spf.cost(lookup, "big.test")
    assert spf.check_host(lookup, "big.test", "198.51.100.1") == "permerror"


def test_two_spf_records_and_an_include_loop_are_errors(dns_zone, lookup) -> None:
    dns_zone.add("two.test", "TXT", "v=spf1 -all")
    dns_zone.add("two.test", "TXT", "v=spf1 +all")
    dns_zone.add("loop.test", "TXT", "v=spf1 include:loop.test -all")
    assert spf.check_host(lookup, "two.test", "192.0.2.1") == "permerror"
    assert spf.check_host(lookup, "loop.test", "192.0.2.1") == "permerror"


def test_the_record_to_publish_keeps_what_is_there_and_adds_before_all() -> None:
    assert spf.with_mechanisms("v=spf1 mx -all", ["ip4:192.0.2.1"]) == "v=spf1 mx ip4:192.0.2.1 -all"
    assert (
        spf.with_mechanisms("v=spf1 redirect=x.test", ["include:y.test"])
        == "v=spf1 include:y.test redirect=x.test"
    )
    assert spf.with_mechanisms(None, ["ip4:192.0.2.1"]) == "v=spf1 ip4:192.0.2.1 ~all"
