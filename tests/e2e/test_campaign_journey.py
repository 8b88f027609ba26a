"""A marketer's whole journey: a list, a CSV import, a template, a campaign through the wizard,
sent by a real Celery worker to the capture relay, the progress bar to 100%, and a report whose
numbers match the mail the relay received."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from templates.spamcheck import spamassassin_path

pytestmark = pytest.mark.browser

CSV = "email,first_name\n" + "".join(f"reader{i}@example.org,Reader{i}\n" for i in range(12))


def test_campaign_journey(
    live_server, page: Page, make_user, capture_relay, celery_worker_process, tmp_path, settings
):
    settings.CAMPAIGNS_CONFIRM_TYPED_ABOVE = 10  # 12 recipients: the count is typed
    from campaigns.models import Campaign
    from mailplatform.models import CapturedMessage

    make_user("marketer", "marta", password="marta password 1")
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("marta")
    page.get_by_label("Password").fill("marta password 1")
    page.get_by_role("button", name="Log in").click()

    # A list, then a CSV imported into it (a real worker runs the import).
    page.goto(live_server.url + "/contacts/lists/")
    page.get_by_label("Name").fill("Readers")
    page.get_by_label("Opt in").select_option("single")
    page.get_by_role("button", name="Create").click()
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(CSV)
    page.goto(live_server.url + "/contacts/imports/")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload").click()
    page.get_by_label("Lists").select_option(label="Readers")
    page.get_by_role("button", name="Start import").click()
    expect(page.get_by_text("Done")).to_be_visible(timeout=60_000)

    # A template from a starter.
    page.goto(live_server.url + "/templates/")
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill("Spring letter")
    page.get_by_text("Personal letter").click()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=re.compile("Spring letter"))).to_be_visible()

    # The wizard: content, audience with its live count, settings, review.
    page.goto(live_server.url + "/campaigns/")
    page.get_by_label("Name").fill("Spring news")
    page.get_by_role("button", name="New campaign").click()
    page.get_by_label("Subject").first.fill("Spring news for {{ contact.first_name }}")
    page.locator("#id_template").select_option(label="Spring letter")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_label("Readers").first.check()
    expect(page.locator("#audience-count")).to_have_text("12")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_label("From address").fill("news@example.com")
    page.get_by_label("From name").fill("The Shop")
    page.get_by_role("button", name="Save and continue").click()
    expect(page.locator("#review-count")).to_have_text("12")
    preview = page.frame_locator("iframe.preview").first
    expect(preview.locator("body")).to_contain_text("Ada")  # sample data in the rendered preview
    expect(page.get_by_role("heading", name="Spring news for Ada")).to_be_visible()
    # SpamAssassin's card arrives after the page (htmx); where it is installed, with a score
    spam_card = page.locator("#spam-check")
    expect(spam_card).not_to_contain_text("Scoring the message")
    if spamassassin_path():
        expect(spam_card.get_by_test_id("spam-score")).to_be_visible()

    # A test send to two addresses as the audience's first contact, then the real one, confirmed.
    page.get_by_label("Send a test to").fill("me@example.com, you@example.com")
    page.get_by_role("button", name="Send test").click()
    expect(
        page.get_by_text("Test sent to me@example.com, you@example.com, as reader0@example.org.")
    ).to_be_visible()
    page.get_by_role("link", name="Send now…").click()
    expect(page.locator("#confirm-subject")).to_have_text("Spring news for {{ contact.first_name }}")
    expect(page.locator("#confirm-audience")).to_have_text("Readers")
    expect(page.locator("#confirm-count")).to_have_text("12")
    page.get_by_label("To confirm, type 12").fill("120")
    page.get_by_role("button", name="Send now to 12 recipients").click()
    expect(page.get_by_text("That is neither 12 nor the campaign's name.")).to_be_visible()
    page.get_by_label("To confirm, type 12").fill("12")
    page.get_by_role("button", name="Send now to 12 recipients").click()
    expect(page.locator("#progress-text")).to_contain_text("100%", timeout=60_000)
    expect(page.locator("#campaign-state")).to_have_text("Sent", timeout=30_000)

    campaign = Campaign.objects.get(name="Spring news")
    received = [m for m in CapturedMessage.objects.all() if not m.subject.startswith("[Test]")]
    assert len(received) == 12
    tests = CapturedMessage.objects.filter(subject__startswith="[Test]")
    assert sorted(r for m in tests for r in m.recipients) == ["me@example.com", "you@example.com"]
    assert {m.subject for m in tests} == {"[Test] Spring news for Reader0"}
    assert all(m.subject.startswith("Spring news for Reader") for m in received)

    page.get_by_role("link", name="Full report").click()
    expect(page.get_by_role("heading", name="Report: Spring news")).to_be_visible()
    expect(page.locator('[data-figure="sent"]')).to_have_text(str(len(received)))
    expect(page.locator('[data-figure="delivered"]')).to_have_text(str(len(received)))
    expect(page.locator('[data-figure="bounced"]')).to_have_text("0")
    expect(page.locator("#not-received")).to_contain_text("Everyone was reached.")
    assert campaign.pk
