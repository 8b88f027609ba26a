"""An admin adds a sending identity, sees its DNS checklist fail against a real DNS server on
loopback, publishes the records the page names there, and sees the checklist pass."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.dnsauth.conftest import MX_HOST, TRACKING_HOST, dns_zone  # noqa: F401  (fixture)
from tests.e2e.test_delivery_journey import _log_in

pytestmark = pytest.mark.browser


def _publish_what_the_page_asks_for(page: Page, zone) -> int:
    rows = page.locator(
        "section[data-subject=identity] tr[data-record-name], section[data-subject=bounce] tr[data-record-name]"
    )
    for index in range(rows.count()):
        row = rows.nth(index)
        name, rtype = row.get_attribute("data-record-name"), row.get_attribute("data-record-type")
        value = row.locator("code.record-value").inner_text()
        zone.replace(name, rtype, value)
    return rows.count()


def test_admin_publishes_the_records_the_checklist_names_and_it_passes(
    live_server,
    page: Page,
    make_user,
    dns_zone,  # noqa: F811
):
    from delivery.models import Relay

    make_user("admin", "ops", password="ops password 123")
    Relay.objects.create(name="outbound", host="relay.posthorn.test", port=25, security="none")
    dns_zone.add("relay.posthorn.test", "A", "192.0.2.10")
    dns_zone.add(MX_HOST, "A", "192.0.2.53")

    _log_in(page, live_server.url, "ops", "ops password 123")
    page.goto(live_server.url + "/delivery/relays/")
    page.get_by_label("Address").fill("shop.test")
    page.get_by_label("Dkim selector").fill("ph1")
    page.get_by_role("button", name="Add identity").click()
    expect(page.get_by_text("shop.test may now send.")).to_be_visible()

    page.get_by_role("link", name="DNS checklist").click()
    identity = page.locator("section[data-subject=identity][data-domain='shop.test']")
    expect(identity).to_contain_text("Not checked yet.")
    page.get_by_role("button", name="Check now").click()
    expect(identity.get_by_test_id("overall")).to_have_text("fail")
    for key in ("spf", "dkim", "dmarc", "dmarc_alignment"):
        expect(identity.locator(f"tr[data-key={key}]")).to_have_attribute("data-status", "fail")
    expect(identity.locator("tr[data-key=dkim] code.record-value")).to_contain_text("v=DKIM1; k=rsa; p=")
    expect(identity.locator("tr[data-key=spf] code.record-value")).to_have_text("v=spf1 ip4:192.0.2.10 ~all")
    bounce = page.locator("section[data-subject=bounce]")
    expect(bounce.locator("tr[data-key=mx]")).to_have_attribute("data-status", "fail")

    # "Publish" in DNS exactly what the page shows (the tracking host needs this server's address,
    # which only its owner knows).
    assert _publish_what_the_page_asks_for(page, dns_zone) >= 5
    dns_zone.add(TRACKING_HOST, "A", "192.0.2.80")
    page.get_by_role("button", name="Check now").click()
    expect(identity.get_by_test_id("overall")).to_have_text("pass")
    expect(bounce.get_by_test_id("overall")).to_have_text("pass")
    expect(page.locator("section[data-subject=tracking]").get_by_test_id("overall")).to_have_text("pass")
    expect(page.locator("tr[data-status=fail]")).to_have_count(0)
