"""Issue #12, Tests: transactional mail to a bare address (no contact) that is suppressed after the API
accepted it and before a worker claims it ends skipped and never reaches the relay (a real aiosmtpd
server on loopback); the same send to an address nobody suppressed does reach it."""

from __future__ import annotations

import pytest

from delivery import engine
from delivery.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def receipt(db):
    from templates.services import template_create

    return template_create(
        name="Receipt", subject="Your receipt", html="<p>Order {{ order }} is on its way.</p>"
    )


@pytest.mark.parametrize("suppressed", ["victim@example.net", "example.net"], ids=["address", "domain"])
def test_a_bare_address_suppressed_after_the_api_accepted_it_is_skipped_at_claim(
    api_client_for, receipt, make_relay, sink, suppressed
):
    from contacts.models import Contact

    make_relay(sink)
    api = api_client_for("admin", ["send", "contacts:write"])
    accepted = api.post("/api/v1/send", {"template": receipt.pk, "to": "victim@example.net", "data": {"order": "A-1"}},
                        format="json")  # fmt: skip
    control = api.post("/api/v1/send", {"template": receipt.pk, "to": "friend@example.org", "data": {"order": "B-2"}},
                       format="json")  # fmt: skip
    assert accepted.status_code == control.status_code == 202, accepted.content
    assert accepted.json()["state"] == "queued" and accepted.json()["contact"] is None
    assert not Contact.objects.exists()  # a bare address: no contact to mark

    suppressing = api.post("/api/v1/suppressions/", {"value": suppressed, "reason": "asked"}, format="json")
    assert suppressing.status_code == 201, suppressing.content

    victim = Message.objects.get(pk=accepted.json()["id"])
    engine.drain(victim.mailing_id)  # what a worker does: claim, re-check, send
    victim.refresh_from_db()
    assert victim.state == "skipped" and victim.sent_at is None
    assert [r.rcpt_tos for r in sink.handler.received] == [["friend@example.org"]]
    assert Message.objects.get(pk=control.json()["id"]).state == "sent"
