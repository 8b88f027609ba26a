"""Issue #15's Done-when: a welcome series built from the recipe (the list page's "Welcome mail"),
a subscription through the public form on a double opt-in list, confirmed from the mail, the first
welcome mail in Captured mail; the test moves the scheduler's clock two days on (no sleeping) and
the second one arrives; the builder shows each step's counts. A real Celery worker sends to the
capture relay; every page on the way is checked with axe-core."""

from __future__ import annotations

import datetime as dt
import email
import re
from email import policy

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.e2e.checks import page_problems

pytestmark = pytest.mark.browser


@pytest.fixture
def browser_context_args(browser_context_args):
    # page_problems injects axe-core inline, which the pages' CSP refuses (as in the other journeys).
    return {**browser_context_args, "bypass_csp": True}


def _captured(subject_start: str):
    from mailplatform.models import CapturedMessage

    return [m for m in CapturedMessage.objects.order_by("id") if m.subject.startswith(subject_start)]


def _find_captured(page: Page, url: str, text: str) -> None:
    """Captured mail, searched for `text`, reloaded until a row shows it (the worker sends meanwhile)."""
    page.goto(url + "/captured/")
    for _ in range(120):
        page.get_by_label("Search by recipient or subject").fill(text)
        page.get_by_role("button", name="Search").click()
        if page.locator("#captured tbody tr", has_text=text).count():
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"no captured mail shows {text!r}; where the mail stopped:\n{_where_it_stopped()}")


def _where_it_stopped() -> str:
    """The runs, the ledger rows and the Mailings of the automations, to say why a mail is missing."""
    from automations.models import Run, StepMailing
    from delivery.models import Mailing, Message

    mailing_ids = list(StepMailing.objects.values_list("mailing_id", flat=True))
    lines = [
        *(f"run {r}" for r in Run.objects.values("id", "status", "step_id", "next_at", "exit_reason")),
        *(
            f"mailing {m}"
            for m in Mailing.objects.filter(pk__in=mailing_ids).values("id", "state", "last_error")
        ),
        *(
            f"message {m}"
            for m in Message.objects.filter(mailing_id__in=mailing_ids).values(
                "id", "mailing_id", "state", "hold_reason", "attempts", "next_attempt_at", "smtp_reply"
            )
        ),
    ]
    return "\n".join(lines) or "no runs, no mailings"


def _confirm_path(message) -> str:
    parsed = email.message_from_bytes(bytes(message.raw), policy=policy.default)
    html = parsed.get_body(preferencelist=("html", "plain")).get_content()
    return re.search(r'href="https?://[^/"]+(/contacts/p/confirm/[^"]+)"', html).group(1)


def test_a_welcome_series_from_the_recipe(
    live_server, page: Page, make_user, capture_relay, celery_worker_process
):
    from automations.models import Automation, Step
    from automations.scheduler import tick
    from contacts.models import MailingList

    make_user("marketer", "wren", password="wren password 1")
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("wren")
    page.get_by_label("Password").fill("wren password 1")
    page.get_by_role("button", name="Log in").click()

    # A public double opt-in list, and its welcome mail: the welcome series recipe.
    page.goto(live_server.url + "/contacts/lists/")
    page.get_by_label("Name").fill("Garden notes")
    page.get_by_label("Opt in").select_option("double")
    page.get_by_label("Is public").check()
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="Welcome mail for Garden notes").click()
    expect(page.get_by_role("heading", name="Recipe: Welcome series")).to_be_visible()
    expect(page.get_by_label("List")).to_have_value(str(MailingList.objects.get(name="Garden notes").pk))
    problems = page_problems(page)
    page.get_by_role("button", name="Create from recipe").click()
    expect(page.get_by_role("heading", name=re.compile("Welcome to Garden notes"))).to_be_visible()
    flow = page.locator("ol.flow")
    expect(flow).to_contain_text("Send “Welcome to Garden notes”")
    expect(flow).to_contain_text("Wait 2 days")
    problems += page_problems(page)
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#automation-status")).to_have_text("Active")
    automation = Automation.objects.get(name="Welcome to Garden notes")

    # A visitor subscribes on the public form; nothing is sent until they confirm.
    garden = MailingList.objects.get(name="Garden notes")
    visitor = page.context.new_page()
    visitor.goto(f"{live_server.url}/contacts/p/subscribe/{garden.public_id}/")
    visitor.get_by_label("Email address").fill("rosa@example.org")
    visitor.get_by_role("button", name="Subscribe").click()
    expect(visitor.get_by_text(re.compile("check your inbox|confirm", re.I)).first).to_be_visible()
    _find_captured(page, live_server.url, "Please confirm your subscription to Garden notes")
    assert not automation.runs.exists()
    (confirmation,) = _captured("Please confirm your subscription")
    visitor.goto(live_server.url + _confirm_path(confirmation))
    visitor.get_by_role("button", name="Yes, subscribe me").click()  # a GET confirms nothing (scanners)
    expect(visitor.get_by_role("heading", name="You are subscribed to Garden notes")).to_be_visible()

    # The confirmation starts the run; the worker's scheduler sends the first mail at once.
    _find_captured(page, live_server.url, "Welcome to Garden notes")
    rows = page.locator("#captured tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("rosa@example.org")
    problems += page_problems(page)
    assert _captured("Getting the most out of it") == []

    # Two days pass for the scheduler (its clock, moved by the test); the second mail goes out.
    tick(now=timezone.now() + dt.timedelta(days=2, minutes=1))
    _find_captured(page, live_server.url, "Getting the most out of it")
    expect(page.locator("#captured tbody tr", has_text="rosa@example.org")).to_have_count(1)
    assert len(_captured("Welcome to Garden notes")) == 1  # the first was not sent again

    # The builder: each send step says it sent one, nobody waits anywhere, the run is finished.
    page.goto(f"{live_server.url}/automations/{automation.pk}/")
    steps = list(Step.objects.filter(automation=automation).order_by("position"))
    for step in steps:
        counts = page.locator(f"#counts-{step.pk}")
        expect(counts.locator('[data-count="waiting"]')).to_have_text("0 waiting")
        if step.kind == "send":
            expect(counts.locator('[data-count="sent"]')).to_have_text("1 sent")
            expect(counts.locator('[data-count="opened"]')).to_have_text("0 opened")
    expect(page.locator('[data-figure="done"]')).to_have_text("1")
    expect(page.locator('[data-figure="sent"]')).to_have_text("2")
    problems += page_problems(page)
    assert not problems, "\n" + "\n".join(problems)
