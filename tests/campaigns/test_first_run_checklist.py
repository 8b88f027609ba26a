"""Issue #14 item 4: the home page walks a first-time user through the five steps, each ticked from
what exists (not from a flag), and goes away once all are done."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _steps(page: str) -> list[tuple[str, str]]:
    section = page[page.index('id="first-run"') : page.index("</section>", page.index('id="first-run"'))]
    rows = []
    for item in section.split("<li class=")[1:]:
        state = item.split('"')[1]
        label = item.split("</span>", 1)[1].split("<span")[0]
        rows.append((state, label.replace("</a>", "").split(">")[-1].strip()))
    return rows


def test_the_checklist_follows_real_state(admin_client, request):
    from campaigns.services import campaign_start
    from delivery.identities import identity_save
    from delivery.models import Mailing, Message, MessageState

    page = admin_client.get(reverse("home")).content.decode()
    assert _steps(page) == [
        ("todo", "Add a sending identity and a relay"),
        ("todo", "Import your contacts"),
        ("todo", "Create an email template"),
        ("todo", "Send yourself a test"),
        ("todo", "Send a campaign"),
    ]
    assert "5 steps to go" in page and f'href="{reverse("contacts:imports")}"' in page

    identity_save(address="news@example.com")  # before a campaign may send from it
    campaign = request.getfixturevalue("campaign_factory")(
        2, from_email="news@example.com"
    )  # contacts and a template, made now
    from delivery.relays import relay_save

    relay_save(name="Out", host="127.0.0.1", port=2525, security="none")
    states = [s for s, _ in _steps(admin_client.get(reverse("home")).content.decode())]
    assert states == ["done", "done", "done", "todo", "todo"]

    test = Mailing.objects.create(name="Test", from_email="a@example.com", meta={"test": True}, compiled={})
    Message.objects.create(mailing=test, send_group=test.send_group, email="me@example.com", state=MessageState.SENT,
                           idempotency_key="t1")  # fmt: skip
    campaign_start(campaign.pk)
    assert 'id="first-run"' not in admin_client.get(reverse("home")).content.decode()
