"""Issue #16's Done-when, in a real chromium: a marketer's signup form's HTML snippet, pasted into a
page served from another loopback origin, signs a person up (the real ALTCHA widget solving its
proof of work, no cookie of ours); the list's edited confirmation mail arrives in Captured mail from
the chosen identity and its link confirms; a campaign's "View in browser" opens that recipient's web
version; and a resend to non-openers from the campaign page reaches only those who did not open.

Mail goes through the engine in this process (`drain`, the send task's own loop) to the platform's
capture relay on loopback; every page is the live server's."""

from __future__ import annotations

import email
import http.server
import re
import threading
from email import policy
from functools import partial

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def _serve(directory: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _html(raw: bytes) -> str:
    return (
        email.message_from_bytes(raw, policy=policy.default).get_body(preferencelist=("html",)).get_content()
    )


def _captured(to: str, subject_part: str) -> list:
    from mailplatform.models import CapturedMessage

    return [
        m
        for m in CapturedMessage.objects.order_by("id")
        if any(to in r for r in m.recipients) and subject_part in m.subject
    ]


def _path(url: str, base: str) -> str:
    return url.replace("&amp;", "&").removeprefix(base)


def test_signup_confirm_web_version_and_resend(
    live_server, page: Page, make_user, capture_relay, settings, tmp_path
):
    from django.core.cache import cache

    from campaigns.models import Campaign
    from campaigns.services import campaign_create, campaign_start, campaigns_start_due
    from contacts.models import Contact, MailingList, Subscription
    from delivery import tracking
    from delivery.engine import drain
    from delivery.identities import identity_save
    from delivery.models import Message
    from delivery.transactional import list_confirmation_save
    from templates.services import template_create
    from templates.starters import STARTERS

    cache.clear()  # signup limits counted by earlier runs on this Redis
    settings.SITE_URL = live_server.url
    settings.SIGNUP_MIN_SECONDS = 1
    settings.TRACKING_MACHINE_SECONDS = 0
    base = live_server.url

    # The marketer's setup: a double opt-in list whose confirmation mail is an edited template
    # from a chosen identity, two readers already on it, and a signup form for it.
    news = MailingList.objects.create(name="News", opt_in="double", is_public=True)
    for name in ("olga", "pete"):
        contact = Contact.objects.create(email=f"{name}@example.org", first_name=name.title())
        Subscription.objects.create(contact=contact, mailing_list=news, status="confirmed")
    confirmation = template_create(
        name="Our confirmation",
        subject="Almost there: confirm {{ list_name }}",
        html=STARTERS["confirmation"].html.replace("Yes, subscribe me", "Count me in"),
        transactional=True,
    )
    identity = identity_save(address="hello@example.com")
    list_confirmation_save(news.pk, template_id=confirmation.pk, identity_id=identity.pk)

    make_user("marketer", "mara", password="mara password 1")
    page.goto(base + "/login/")
    page.get_by_label("Username").fill("mara")
    page.get_by_label("Password").fill("mara password 1")
    page.get_by_role("button", name="Log in").click()
    page.goto(base + "/contacts/signup-forms/")
    page.get_by_label("Name", exact=False).and_(page.get_by_role("textbox")).first.fill("Newsletter signup")
    page.get_by_label("News", exact=True).check()
    page.get_by_label("Consent text").fill("I agree to get the newsletter.")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Newsletter signup")).to_be_visible()
    snippet = page.locator("#code-html").input_value()
    assert "csrfmiddlewaretoken" not in snippet and "altcha-widget" in snippet

    # The snippet on another origin's page; no cookie of ours goes there.
    (tmp_path / "index.html").write_text(
        f"<!doctype html><html lang='en'><head><title>Acme</title></head><body><h1>Acme news</h1>{snippet}</body></html>"
    )
    server, other = _serve(str(tmp_path))
    try:
        page.goto(other + "/index.html")
        page.get_by_label("Email address").fill("ann@example.org")
        page.get_by_label("First name").fill("Ann")
        page.get_by_label("I agree to get the newsletter.").check()
        page.locator("altcha-widget").get_by_role("checkbox").click(
            force=True
        )  # the real widget solves its proof of work
        expect(page.locator("altcha-widget input[name=altcha]")).not_to_have_value("", timeout=60_000)
        page.get_by_role("button", name="Subscribe").click()
        expect(page.locator("#signup-done")).to_be_visible()
        assert page.url.startswith(base)
    finally:
        server.shutdown()
    ann = Contact.objects.get(email="ann@example.org")
    assert Subscription.objects.get(contact=ann, mailing_list=news).status == "unconfirmed"

    # The edited confirmation mail, in Captured mail, from the chosen identity; its link confirms.
    message = Message.objects.get(email="ann@example.org")
    drain(message.mailing_id, seconds=30)
    [mail] = _captured("ann@example.org", "Almost there")
    assert mail.mail_from and "hello@example.com" in mail.raw.decode(errors="replace")
    page.goto(base + "/captured/")
    page.get_by_role("link", name=re.compile("Almost there: confirm News")).first.click()
    expect(page.get_by_text("Count me in")).to_be_visible()
    # The message as Captured mail shows it (its HTML part, the frame's own address); its button confirms.
    page.goto(base + f"/captured/{mail.pk}/html")
    page.get_by_role("link", name="Count me in").click()
    expect(page).to_have_url(re.compile("/contacts/p/confirm/"))
    page.get_by_role("button").first.click()
    expect(page.get_by_role("heading", name="You are subscribed to News")).to_be_visible()
    assert Subscription.objects.get(contact=ann, mailing_list=news).status == "confirmed"

    # A campaign to the list; Ann opens its web version; Olga opens the mail itself.
    letter = template_create(
        name="Spring",
        subject="Spring news",
        html=STARTERS["letter"].html.replace("A plain, personal note", "Spring is here"),
    )
    campaign = campaign_create(name="Spring", template=letter, lists=[news], from_email="news@example.com")
    campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=30)
    assert {m.recipients[0] for m in _captured("@example.org", "Spring news")} == {
        "ann@example.org",
        "olga@example.org",
        "pete@example.org",
    }
    ann_mail = _html(_captured("ann@example.org", "Spring news")[0].raw)
    view = re.search(r'<a href="([^"]+)">View in browser</a>', ann_mail).group(1)
    page.goto(base + _path(view, base))
    expect(page.get_by_text("Hi Ann,")).to_be_visible()
    assert page.locator('meta[name="robots"]').get_attribute("content") == "noindex, nofollow"
    olga_mail = _html(_captured("olga@example.org", "Spring news")[0].raw)
    page.goto(base + _path(re.search(r'<img src="([^"]+/t/o/[^"]+)"', olga_mail).group(1), base))
    tracking.tracking_flush()

    # Resend to non-openers, from the campaign's page: Ann and Pete did not open the mail (a web
    # version is not an open), Olga did.
    from campaigns.services import campaign_sync

    campaign_sync(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.state == "sent"
    page.goto(base + f"/campaigns/{campaign.pk}/")
    page.get_by_label("New subject").fill("In case you missed it")
    page.get_by_label("Send after").select_option("0")
    page.get_by_role("button", name="Schedule the resend").click()
    expect(page.get_by_text("A resend of")).to_be_visible()
    follow_up = Campaign.objects.get(resend_of=campaign)
    assert campaigns_start_due()["started"] == 1
    follow_up.refresh_from_db()
    drain(follow_up.mailing_id, seconds=30)
    assert sorted(m.recipients[0] for m in _captured("@example.org", "In case you missed it")) == [
        "ann@example.org",
        "pete@example.org",
    ]
