"""A new marketer's whole journey (issue #14's Done-when), once at desktop width and once at
390 px (a phone): a list, a CSV import, a segment, a template, a campaign through the wizard (its
A/B settings hidden while A/B is off), a test send as a real contact, the send confirmed by typing
the count, sent by a real Celery worker to the capture relay, the live figures reaching the total
without a reload, a report whose counts match the mail the relay received and lead to the
contacts behind them (saved as a segment), and the captured mail searched. Every page on the way
is checked at the journey's own width: no serious or critical axe-core violation and no sideways
scrolling (document.scrollingElement.scrollWidth <= innerWidth)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from templates.spamcheck import spamassassin_path
from tests.e2e.checks import DESKTOP, PHONE, problems_here, settle

pytestmark = pytest.mark.browser

CSV = "email,first_name\n" + "".join(f"reader{i}@example.org,Reader{i}\n" for i in range(12))


@pytest.fixture
def browser_context_args(browser_context_args):
    # axe-core is injected as an inline script, which the pages' Content-Security-Policy rightly
    # refuses (tests/security/test_csp.py checks the policy; the other journeys run under it).
    return {**browser_context_args, "bypass_csp": True}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_campaign_journey(
    live_server, page: Page, make_user, capture_relay, celery_worker_process, tmp_path, settings, viewport
):
    settings.CAMPAIGNS_CONFIRM_TYPED_ABOVE = 10  # 12 recipients: the count is typed
    from campaigns.models import Campaign
    from contacts.models import Segment
    from mailplatform.models import CapturedMessage

    page.set_viewport_size(viewport)
    phone = viewport == PHONE
    problems: list[str] = []

    def check() -> None:
        settle(page)
        problems.extend(problems_here(page))

    make_user("marketer", "marta", password="marta password 1")
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("marta")
    page.get_by_label("Password").fill("marta password 1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    check()

    # A list, then a CSV imported into it (a real worker runs the import).
    page.goto(live_server.url + "/contacts/lists/")
    page.get_by_label("Name").fill("Readers")
    page.get_by_label("Opt in").select_option("single")
    page.get_by_role("button", name="Create").click()
    check()
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(CSV)
    page.goto(live_server.url + "/contacts/imports/")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload").click()
    page.get_by_label("Lists").select_option(label="Readers")
    check()
    page.get_by_role("button", name="Start import").click()
    expect(page.get_by_text("Done")).to_be_visible(timeout=60_000)
    check()

    # A custom field in the marketer's words: the key is made from the label as it is typed.
    page.goto(live_server.url + "/contacts/fields/")
    page.get_by_label("Label").fill("Loyalty Points")
    expect(page.get_by_label("Key")).to_have_value("loyalty_points")
    page.get_by_label("Type").select_option("number")
    page.get_by_role("button", name="Add").click()
    expect(
        page.get_by_text("Field added: Loyalty Points, used in templates as contact.loyalty_points.")
    ).to_be_visible()
    check()

    # A segment: its count shows before it has a name.
    page.goto(live_server.url + "/contacts/segments/new/")
    page.get_by_label("Value").fill("reader1")
    expect(page.locator("#segment-count")).to_contain_text("contacts match")
    expect(page.locator("#segment-count strong")).to_have_text("3")  # reader1, reader10, reader11
    check()
    page.get_by_label("Name").fill("Reader ones")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("Saved the segment Reader ones.")).to_be_visible()

    # A template from a starter.
    page.goto(live_server.url + "/templates/")
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill("Spring letter")
    page.get_by_text("Personal letter").click()
    check()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=re.compile("Spring letter"))).to_be_visible()
    check()

    # The wizard: content (A/B variants hidden while A/B is off), audience with its live count,
    # settings (no A/B fields), review.
    page.goto(live_server.url + "/campaigns/")
    page.get_by_label("Name").fill("Spring news")
    page.get_by_role("button", name="New campaign").click()
    expect(page.locator("#ab-variants")).to_be_hidden()
    page.get_by_label("A/B test: send variants to a test share first").check()
    expect(page.locator("#ab-variants")).to_be_visible()
    page.get_by_label("A/B test: send variants to a test share first").uncheck()
    expect(page.locator("#ab-variants")).to_be_hidden()
    page.get_by_label("Subject").first.fill("Spring news for {{ contact.first_name }}")
    page.locator("#id_template").select_option(label="Spring letter")
    check()
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_label("Readers").first.check()
    expect(page.locator("#audience-count")).to_have_text("12")
    check()
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_label("From address")).to_be_visible()
    expect(page.get_by_label("A/B winner by")).to_have_count(0)
    page.get_by_label("From address").fill("news@example.com")
    page.get_by_label("From name").fill("The Shop")
    check()
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
    check()

    # A test send to two addresses as a real contact of the audience, then the real one, confirmed.
    page.get_by_label("Send a test to").fill("me@example.com, you@example.com")
    page.get_by_label("As the contact").fill("reader5@example.org")
    page.get_by_role("button", name="Send test").click()
    expect(
        page.get_by_text("Test sent to me@example.com, you@example.com, as reader5@example.org.")
    ).to_be_visible()
    page.get_by_role("link", name="Send now…").click()
    expect(page.locator("#confirm-subject")).to_have_text("Spring news for {{ contact.first_name }}")
    expect(page.locator("#confirm-audience")).to_have_text("Readers")
    expect(page.locator("#confirm-count")).to_have_text("12")
    check()
    page.get_by_label("To confirm, type 12").fill("120")
    page.get_by_role("button", name="Send now to 12 recipients").click()
    expect(page.get_by_text("That is neither 12 nor the campaign's name.")).to_be_visible()
    page.get_by_label("To confirm, type 12").fill("12")
    page.get_by_role("button", name="Send now to 12 recipients").click()
    expect(page.locator("#progress-text")).to_contain_text("100%", timeout=60_000)
    expect(page.locator("#campaign-state")).to_have_text("Sent", timeout=30_000)
    # The live figures were redrawn with the bar: Delivered agrees with it, with no reload.
    expect(page.locator('[data-live="delivered"]')).to_have_text("12")
    expect(page.locator("#progress-text")).to_contain_text("12 sent of 12")
    check()

    campaign = Campaign.objects.get(name="Spring news")
    received = [m for m in CapturedMessage.objects.all() if not m.subject.startswith("[Test]")]
    assert len(received) == 12
    tests = CapturedMessage.objects.filter(subject__startswith="[Test]")
    assert sorted(r for m in tests for r in m.recipients) == ["me@example.com", "you@example.com"]
    assert {m.subject for m in tests} == {"[Test] Spring news for Reader5"}
    assert all(m.subject.startswith("Spring news for Reader") for m in received)

    page.get_by_role("link", name="Full report").click()
    expect(page.get_by_role("heading", name="Report: Spring news")).to_be_visible()
    expect(page.locator('[data-figure="sent"]')).to_have_text(str(len(received)))
    expect(page.locator('[data-figure="delivered"]')).to_have_text(str(len(received)))
    expect(page.locator('[data-figure="bounced"]')).to_have_text("0")
    expect(page.locator("#not-received")).to_contain_text("Everyone was reached.")
    # The click map draws the message as sent (the letter has no tracked link to mark).
    expect(page.frame_locator("#click-map").locator("body")).to_contain_text("Ada")
    expect(page.locator("#click-map-note")).to_contain_text("no tracked links")
    check()
    # The count drills down to the contacts behind it, saved as a segment, and on to one of them.
    page.locator('[data-figure="delivered"]').click()
    expect(page.get_by_role("heading", name="12 contacts had it delivered")).to_be_visible()
    check()
    page.get_by_role("button", name="Save as a segment").click()
    expect(page.get_by_text(re.compile("Saved the segment Spring news: had it delivered"))).to_be_visible()
    expect(page.locator("#segment-count strong")).to_have_text("12")
    check()
    assert Segment.objects.filter(name__startswith="Spring news: had it delivered").exists()
    page.goto(live_server.url + f"/campaigns/{campaign.pk}/report/people/sent/")
    page.get_by_role("link", name="reader0@example.org").click()
    expect(page.get_by_role("heading", name=re.compile("reader0@example.org"))).to_be_visible()
    check()

    # The captured mail from the menu (folded behind a button on a phone): the search finds the
    # test, newest first, marked, and it renders as the real contact.
    if phone:
        page.get_by_role("button", name="Menu").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("Captured")).click()
    page.get_by_label("Search by recipient or subject").fill("you@example.com")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#captured tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Test")
    check()
    rows.first.get_by_role("link").click()
    expect(page.frame_locator("iframe.preview").locator("body")).to_contain_text("Reader5")
    check()
    assert not problems, "\n" + "\n".join(problems)
