"""The DNS checklist against a real DNS server on loopback: what fails, the record it says to
publish, and that publishing exactly that record makes it pass."""

from __future__ import annotations

import time

import pytest

from delivery import identities as delivery_services
from delivery.dnsauth import selectors, services
from delivery.dnsauth.models import DomainCheck
from delivery.models import Relay
from tests.dnsauth.conftest import BOUNCE_DOMAIN, MX_HOST, TRACKING_HOST
from tests.dnsauth.dns_server import ZoneServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def identity():
    found = delivery_services.identity_save(address="shop.test")
    return delivery_services.identity_generate_dkim(found, selector="ph1")


@pytest.fixture
def relay():
    return Relay.objects.create(name="outbound", host="relay.posthorn.test", port=25, security="none")


def _items(check: DomainCheck) -> dict[str, dict[str, str]]:
    return {i["key"]: i for i in check.items}


def _publish(zone: ZoneServer, check: DomainCheck) -> None:
    """Publish what the checklist says to, as an admin would (replacing the name's record)."""
    for item in check.items:
        if item["status"] != "pass" and item["record_value"]:
            zone.replace(item["record_name"], item["record_type"], item["record_value"])


def test_an_identity_with_nothing_published_fails_and_passes_once_the_records_are(dns_zone, identity, relay):
    dns_zone.add("relay.posthorn.test", "A", "192.0.2.10")
    check = services.dns_check_identity(identity)
    items = _items(check)
    assert check.status == "fail"
    assert {k: items[k]["status"] for k in ("spf", "dkim", "dmarc", "dmarc_alignment")} == dict.fromkeys(
        ("spf", "dkim", "dmarc", "dmarc_alignment"), "fail"
    )
    assert items["spf"]["record_value"] == "v=spf1 ip4:192.0.2.10 ~all"
    assert (items["dkim"]["record_name"], items["dkim"]["record_value"]) == (
        "ph1._domainkey.shop.test",
        identity.dkim_dns_value,
    )
    assert items["dmarc"]["record_name"] == "_dmarc.shop.test"
    assert items["return_path"]["status"] == "pass"  # bounces.shop.test is within shop.test
    assert {items[k]["status"] for k in ("mta_sts", "tls_rpt", "bimi")} == {"info"}

    _publish(dns_zone, check)
    again = services.dns_check_identity(identity)
    assert again.status == "pass", again.items
    assert _items(again)["dmarc_alignment"]["detail"] == "Aligned by DKIM."


def test_a_dkim_record_with_another_key_fails(dns_zone, identity):
    dns_zone.add(
        "ph1._domainkey.shop.test",
        "TXT",
        "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong",
    )
    item = _items(services.dns_check_identity(identity))["dkim"]
    assert (item["status"], item["detail"]) == ("fail", "ph1._domainkey.shop.test holds a different key.")


def test_spf_names_the_relay_it_does_not_allow_and_keeps_the_rest_of_the_record(dns_zone, identity):
    Relay.objects.create(name="esp", host="smtp.sendgrid.net", port=587)
    Relay.objects.create(name="own", host="relay.posthorn.test", port=25, security="none")
    dns_zone.add("relay.posthorn.test", "A", "192.0.2.10")
    dns_zone.add("shop.test", "TXT", "v=spf1 mx -all")
    dns_zone.add("shop.test", "TXT", "google-site-verification=abc")  # other TXT records are not SPF
    item = _items(services.dns_check_identity(identity))["spf"]
    assert item["status"] == "fail"
    assert "esp (include:sendgrid.net)" in item["detail"] and "own (192.0.2.10)" in item["detail"]
    assert item["record_value"] == "v=spf1 mx include:sendgrid.net ip4:192.0.2.10 -all"


def test_the_lookup_limit_fails_spf_even_when_the_relay_is_allowed(dns_zone, identity, relay):
    dns_zone.add("relay.posthorn.test", "A", "192.0.2.10")
    includes = " ".join(f"include:i{n}.test" for n in range(10))
    dns_zone.add("shop.test", "TXT", f"v=spf1 ip4:192.0.2.10 {includes} a -all")
    for n in range(10):
        dns_zone.add(f"i{n}.test", "TXT", "v=spf1 -all")
    item = _items(services.dns_check_identity(identity))["spf"]
    assert item["status"] == "fail" and "more than 10 DNS lookups" in item["detail"]


def test_dmarc_at_the_organisational_domain_and_a_return_path_outside_it(dns_zone, settings):
    settings_domain = "news.shop.test"
    found = delivery_services.identity_save(address=f"hello@{settings_domain}")
    found = delivery_services.identity_generate_dkim(found, selector="s1")
    settings.BOUNCE_DOMAIN = "bounces.posthorn.test"
    dns_zone.add("_dmarc.shop.test", "TXT", "v=DMARC1; p=quarantine")
    dns_zone.add(f"s1._domainkey.{settings_domain}", "TXT", found.dkim_dns_value)
    items = _items(services.dns_check_identity(found))
    assert (items["dmarc"]["status"], items["dmarc"]["detail"]) == ("pass", "_dmarc.shop.test: p=quarantine.")
    # DKIM aligns, so DMARC passes; the foreign return path only weakens it
    assert items["dmarc_alignment"]["status"] == "pass"
    assert items["return_path"]["status"] == "warn"
    assert items["return_path"]["record_name"] == "bounces.shop.test"


def test_optional_records_are_reported_where_present(dns_zone, identity):
    dns_zone.add("_mta-sts.shop.test", "TXT", "v=STSv1; id=20260101")
    dns_zone.add("_smtp._tls.shop.test", "TXT", "v=TLSRPTv1; rua=mailto:tls@shop.test")
    items = _items(services.dns_check_identity(identity))
    assert items["mta_sts"]["detail"] == "_mta-sts.shop.test: v=STSv1; id=20260101"
    assert "rua=mailto:tls@shop.test" in items["tls_rpt"]["detail"]
    assert items["bimi"]["detail"] == "Not published at default._bimi.shop.test (optional)."


def test_bounce_domain_mx_must_reach_the_listener(dns_zone, relay):
    dns_zone.add("relay.posthorn.test", "A", "192.0.2.10")
    dns_zone.add(BOUNCE_DOMAIN, "TXT", "v=spf1 ip4:192.0.2.10 -all")
    item = _items(services.dns_check_bounce_domain())["mx"]
    assert (item["status"], item["record_type"], item["record_value"]) == ("fail", "MX", f"10 {MX_HOST}.")
    dns_zone.add(BOUNCE_DOMAIN, "MX", "10 mail.elsewhere.test")
    assert "bounces go elsewhere" in _items(services.dns_check_bounce_domain())["mx"]["detail"]
    # an MX under another name that reaches the same address is the listener too
    dns_zone.add(MX_HOST, "A", "192.0.2.53")
    dns_zone.add("mail.elsewhere.test", "A", "192.0.2.53")
    assert services.dns_check_bounce_domain().status == "pass"


def test_tracking_domain_must_resolve(dns_zone):
    assert services.dns_check_tracking_domain().status == "fail"
    dns_zone.add(TRACKING_HOST, "A", "192.0.2.80")
    assert services.dns_check_tracking_domain().status == "pass"


def test_a_dns_server_that_does_not_answer_is_unknown_not_failing_and_quick(settings, identity):
    from tests.delivery.smtp_servers import free_port

    settings.DNS_NAMESERVERS = ["127.0.0.1"]
    settings.DNS_PORT = free_port()  # nothing listens there
    settings.DNS_TIMEOUT_SECONDS = 0.5
    started = time.monotonic()
    counts = services.dns_checks_run()
    assert time.monotonic() - started < 10
    assert counts["fail"] == 0 and counts["unknown"] >= 1
    assert DomainCheck.objects.get(identity=identity).status == "unknown"


def test_the_checklist_page_shows_each_failure_with_its_record(dns_zone, admin_client, identity):
    response = admin_client.post("/dns/check/", follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-key="dkim" data-status="fail"' in page
    assert identity.dkim_dns_value in page
    assert "ph1._domainkey.shop.test" in page
    assert admin_client.get("/dns/check/").status_code == 405


def test_the_checklist_is_for_admins(client, marketer_client):
    assert marketer_client.get("/dns/").status_code == 403
    assert client.get("/dns/").status_code in (302, 403)


def test_from_standing_reads_the_last_check(dns_zone, identity):
    assert selectors.from_standing("news@shop.test").status == "unchecked"
    services.dns_check_identity(identity)
    standing = selectors.from_standing("news@shop.test")
    assert standing.failing and "DKIM key in DNS matches the stored key for shop.test" in standing.failures
    assert selectors.from_standing("a@unknown.test").status == "none"


def test_beat_rechecks_with_the_task(dns_zone, identity):
    from delivery.dnsauth.tasks import dns_checks_run
    from mailplatform.beat import SCHEDULE

    assert SCHEDULE["dns-checks"]["task"] == "delivery.dnsauth.tasks.dns_checks_run"
    dns_checks_run()
    assert {c.subject for c in DomainCheck.objects.all()} == {"identity", "bounce", "tracking"}
