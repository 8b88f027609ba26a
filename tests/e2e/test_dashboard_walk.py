"""One walk of every dashboard page in a real browser (issue #14 items 7 and 8): each page loads,
has no serious or critical axe-core violation, and at 390 px (a phone) the page itself never
scrolls sideways: tables and charts scroll inside their own box. The phone menu folds behind a
button that the keyboard reaches with a visible focus.

One walk for the whole suite, not one per page-test: axe costs a fraction of a second per page.
A route of ours that is neither walked nor listed below as not a page fails the walk, so a new
page cannot be forgotten.
"""

from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from playwright.sync_api import Page, expect

from tests.e2e.checks import DESKTOP, PHONE, axe_serious, overflow, settle, too_wide

pytestmark = pytest.mark.browser


# Routes that are not pages a person looks at: POST-only actions, downloads, fragments drawn into
# a page (walked with that page), public pages outside the dashboard, machine endpoints.
NOT_PAGES = {
    "password_reset", "password_reset_done", "password_reset_confirm", "password_reset_complete",
    "healthz", "readyz", "metrics", "login", "logout", "password_change_done", "user-update", "api-key-revoke",
    "captured-message-html", "captured-message-raw", "captured-message-attachment",
    "templates:switch-mode", "templates:attachment-add", "templates:attachment-remove",
    "contacts:create", "contacts:contact-subscribe", "contacts:contact-unsubscribe", "contacts:contact-export",
    "contacts:contact-erase", "contacts:list-delete", "contacts:list-export", "contacts:segment-delete",
    "contacts:segment-export", "contacts:segment-builder", "contacts:segment-count",
    "contacts:suppression-delete", "contacts:field-delete", "contacts:import-progress", "contacts:import-report",
    "contacts:home-fragment", "contacts:preview-data", "contacts:subscribe", "contacts:confirm",
    "contacts:preferences",
    # Public signup form pages and endpoints (no dashboard shell): tests/contacts/test_signup_forms.py
    # and the browser journey tests/e2e/test_signup_journey.py drive them.
    "contacts:signup", "contacts:signup-frame", "contacts:signup-challenge", "contacts:signup-submit",
    "templates:home-fragment", "templates:preview", "templates:preview-meta", "templates:version-preview",
    "templates:restore", "templates:duplicate", "templates:archive",
    "campaigns:create", "campaigns:home-fragment", "campaigns:progress", "campaigns:count",
    "campaigns:test-send", "campaigns:report-csv", "campaigns:action", "campaigns:spam-check",
    "campaigns:archive", "campaigns:archive-item", "campaigns:archive-feed",  # public, off by default: tests/campaigns/test_archive.py
    "campaigns:resend",  # POST only: its form is on the campaign page (walked)
    "delivery:home-fragment", "delivery:mailing-progress", "delivery:mailing-action",
    "delivery:template-test-send", "delivery:contact-timeline", "delivery:relay-test", "delivery:relay-delete",
    "delivery:identity-dkim", "delivery:identity-delete", "delivery:unsubscribe",
    "delivery:list-confirmation",  # a fragment of contacts:list-edit (loaded by htmx), walked there
    "delivery:web-version",  # public, per message: walked by tests/delivery/test_web_version.py
    "bounces:event-raw", "bounces:mailbox-poll", "bounces:home-fragment",
    "dnsauth:check-now", "media:upload", "media:picker", "media:file",
    "delivery:warmup-delete", "delivery:relays-usage", "tracking:open", "tracking:click", "tracking:trivial", "bounces:webhook-amazon-ses",
    "automations:create", "automations:status", "automations:enrol", "automations:run-remove",
    "automations:step-add", "automations:step-update", "automations:step-delete", "automations:step-move", "automations:counts",
    "automations:contact-runs",
}  # fmt: skip
OUR_APPS = ("mailplatform.", "contacts.", "templates.", "campaigns.", "delivery.", "media.", "automations.")


def _routes(patterns, namespace: str = "", prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = ":".join(filter(None, [namespace, pattern.namespace or ""]))
            yield from _routes(pattern.url_patterns, ns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and pattern.name:
            route = prefix + str(pattern.pattern)
            if not route.startswith("api/") and pattern.callback.__module__.startswith(OUR_APPS):
                yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def _world(admin) -> dict[str, list]:
    """A little of everything, made through the services, so every page has something to draw."""
    from campaigns.services import campaign_create, campaign_start
    from contacts.models import Contact, ContactImport, CustomField, MailingList, Subscription
    from contacts.services import segment_save
    from delivery.bounces.models import BounceEvent, BounceMailbox
    from delivery.identities import identity_save
    from delivery.models import Relay
    from delivery.relays import relay_save
    from mailplatform.models import CapturedMessage
    from mailplatform.services import webhook_endpoint_create
    from templates.services import template_create

    readers = MailingList.objects.create(name="Readers")
    for i in range(3):
        contact = Contact.objects.create(email=f"reader{i}@example.org", first_name=f"Reader{i}")
        Subscription.objects.create(contact=contact, mailing_list=readers, status="confirmed")
    loyalty = CustomField.objects.create(name="loyalty_points", label="Loyalty points", type="number")
    segment = segment_save(
        None, name="Readers named R",
        rules={"match": "all", "groups": [{"match": "all", "conditions": [
            {"field": "first_name", "op": "starts_with", "value": "R"}]}]},
    )  # fmt: skip
    upload = ContactImport.objects.create(
        filename="readers.csv", path="imports/none.csv", status="done", rows=3
    )
    template = template_create(
        name="Spring letter",
        subject="Hello {{ contact.first_name }}",
        html='<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
    )
    relay_save(name="Local", host="127.0.0.1", port=2525, security="none")
    relay = Relay.objects.get(name="Local")
    identity = identity_save(address="news@example.com")
    from delivery.warmup import warmup_save

    schedule = warmup_save(domain="example.com", caps="50, 100, 500")
    draft = campaign_create(
        name="Draft one", template=template, lists=[readers], from_email="news@example.com"
    )
    sent = campaign_create(name="Sent one", template=template, lists=[readers], from_email="news@example.com")
    campaign_start(sent.pk)
    sent.refresh_from_db()
    captured = CapturedMessage.objects.create(
        mail_from="b@example.com", recipients=["reader0@example.org"], subject="Hello Reader0", size=10,
        raw=b"Subject: Hello Reader0\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>",
    )  # fmt: skip
    mailbox = BounceMailbox.objects.create(
        name="box", host="127.0.0.1", port=1, security="none", username="x"
    )
    endpoint, _ = webhook_endpoint_create(
        url="https://hooks.example.com/x", event_types=["bounced"], by=admin
    )
    bounce = BounceEvent.objects.first()
    from automations.recipes import recipe_create
    from automations.scheduler import tick
    from automations.services import automation_set_status, enrol
    from contacts.services import signup_form_save

    signup = signup_form_save(None, by=admin, lists=[readers], name="Readers signup", consent_text="I agree.")
    welcome = recipe_create("welcome", list_id=readers.pk, from_email="news@example.com")
    automation_set_status(welcome.pk, "active")
    enrol(welcome.pk, [Contact.objects.first().pk])
    tick()
    pk = {
        "user-update": admin.pk, "webhook-detail": endpoint.pk, "captured-message": captured.pk,
        "contacts:detail": Contact.objects.first().pk, "contacts:list-edit": readers.pk,
        "contacts:segment-edit": segment.pk, "contacts:import-detail": upload.pk,
        "contacts:signup-form-edit": signup.pk,
        "templates:edit": template.pk, "templates:versions": template.pk,
        "campaigns:detail": sent.pk, "campaigns:report": sent.pk, "campaigns:send": draft.pk,
        "campaigns:schedule": draft.pk, "delivery:mailing": sent.mailing_id, "delivery:relay-edit": relay.pk,
        "delivery:warmup-edit": schedule.pk,
        "bounces:mailbox-edit": mailbox.pk, "contacts:field-edit": loyalty.pk,
        "automations:detail": welcome.pk, "automations:runs": welcome.pk,
    }  # fmt: skip
    urls: dict[str, list] = {}
    for name in _routes(get_resolver().url_patterns):
        if name in NOT_PAGES:
            continue
        if name == "templates:version-diff":
            urls[name] = [reverse(name, args=[template.pk, template.current_version_id])]
        elif name == "campaigns:step":
            urls[name] = [
                reverse(name, args=[draft.pk, s]) for s in ("content", "audience", "settings", "review")
            ]
        elif name == "campaigns:report-people":
            urls[name] = [reverse(name, args=[sent.pk, "opened"])]
        elif name == "automations:recipe":
            urls[name] = [reverse(name, args=[slug]) for slug in ("welcome", "reengagement", "birthday")]
        elif name == "bounces:event":
            urls[name] = [reverse(name, args=[bounce.pk])] if bounce else []
        elif name in pk:
            urls[name] = [reverse(name, args=[pk[name]])]
        else:
            try:
                urls[name] = [reverse(name)]
            except NoReverseMatch:
                pytest.fail(
                    f"{name} is a new route: walk it (give it an object in _world) or list it in NOT_PAGES"
                )
    del identity
    return urls


@pytest.fixture
def browser_context_args(browser_context_args):
    # axe-core is injected as an inline script, which the pages' Content-Security-Policy rightly
    # refuses; the other journeys run under the policy and show the pages work with it.
    return {**browser_context_args, "bypass_csp": True}


def test_every_dashboard_page_is_accessible_and_fits_a_phone(live_server, page: Page, make_user):
    admin = make_user("admin", "walker", password="walker password 1")
    urls = _world(admin)
    page.set_viewport_size(DESKTOP)
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("walker")
    page.get_by_label("Password").fill("walker password 1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    problems: list[str] = []
    walked = 0
    for name, paths in urls.items():
        for path in paths:
            page.set_viewport_size(DESKTOP)
            response = page.goto(live_server.url + path)
            walked += 1
            if response is None or response.status >= 400:
                problems.append(f"{path} ({name}): HTTP {response.status if response else '?'}")
                continue
            settle(page)
            for violation in axe_serious(page):
                problems.append(
                    f"{path}: axe {violation['impact']} {violation['id']} at {violation['nodes']}"
                )
            page.set_viewport_size(PHONE)
            wider = overflow(page)
            if wider > 0:
                problems.append(
                    f"{path}: at 390 px the page scrolls sideways by {wider} px: {too_wide(page)}"
                )
    assert walked >= 30, urls
    assert not problems, "\n" + "\n".join(problems)

    # The phone menu: folded, reached by keyboard with a visible focus, opened by Enter.
    page.set_viewport_size(PHONE)
    page.goto(live_server.url + "/")
    nav_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns")
    expect(nav_link).to_be_hidden()
    toggle = page.get_by_role("button", name="Menu")
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate(
            "document.activeElement && document.activeElement.classList.contains('menu-toggle')"
        ):
            break
    expect(toggle).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    page.keyboard.press("Enter")
    expect(nav_link).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    assert overflow(page) <= 0
