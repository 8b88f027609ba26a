"""Steps and triggers not covered elsewhere: campaign engagement, split, event branch, exit segment,
the webhook step (its address check and its call)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from automations import scheduler, services
from automations.models import Run, Step
from mailplatform.errors import Invalid

pytestmark = pytest.mark.django_db


def _flow(*steps):
    automation = services.automation_create(name="Flow", trigger="manual")
    made = [services.step_add(automation.pk, kind=kind, config=config) for kind, config in steps]
    return automation, made


def test_a_campaigns_human_clicks_start_runs_machine_ones_do_not(make_contacts, settings):
    from automations.triggers import campaign_engagement_entries
    from delivery.mailings import mailing_create
    from delivery.models import Message, MessageEvent

    person, scanner = make_contacts(2)
    mailing = mailing_create(name="Spring", compiled={"subject": "Hi", "html": "<p>x</p>", "text": "x"},
                             from_email=settings.DELIVERY_DEFAULT_FROM_EMAIL, meta={"campaign_id": 7})  # fmt: skip
    for contact, data in ((person, {}), (scanner, {"machine": "scanner:bot"})):
        message = Message.objects.create(
            mailing=mailing, send_group="g", contact=contact, email=contact.email, state="sent"
        )
        MessageEvent.objects.create(
            message=message, mailing=mailing, kind="clicked", at=message.created_at, data=data
        )
    automation = services.automation_create(
        name="Clickers", trigger="campaign_clicked", trigger_campaign_id=7
    )
    services.step_add(automation.pk, kind="end")
    services.automation_set_status(automation.pk, "active")
    assert campaign_engagement_entries(automation) == 1
    assert list(Run.objects.filter(automation=automation).values_list("contact_id", flat=True)) == [person.pk]
    automation.refresh_from_db()
    assert campaign_engagement_entries(automation) == 0  # the watermark moved past them


def test_a_random_split_is_stable_and_roughly_even(make_contacts):
    automation, (split, tag_a, end, tag_b) = _flow(
        ("split", {"percent": 50}), ("update_field", {"field": "side", "value": "A"}), ("end", {}),
        ("update_field", {"field": "side", "value": "B"}),
    )  # fmt: skip
    services.step_update(split.pk, config={"percent": 50, "otherwise": tag_b.key})
    services.automation_set_status(automation.pk, "active")
    contacts = make_contacts(200)
    services.enrol(automation.pk, [c.pk for c in contacts])
    scheduler.tick()
    from contacts.models import Contact

    sides = list(Contact.objects.values_list("attributes__side", flat=True))
    assert 60 < sides.count("A") < 140 and sides.count("A") + sides.count("B") == 200


def test_an_event_branch_and_the_exit_segment(make_contacts):
    from contacts.models import Contact
    from contacts.services import segment_save

    customers = segment_save(None, name="Customers", rules={"match": "all", "groups": [{"match": "all", "conditions": [
        {"field": "email", "op": "contains", "value": "buyer"}]}]})  # fmt: skip
    automation, (branch, yes, end, no) = _flow(
        ("branch", {"condition": "event", "event": "paid"}), ("update_field", {"field": "paid", "value": "yes"}),
        ("end", {}), ("update_field", {"field": "paid", "value": "no"}),
    )  # fmt: skip
    services.step_update(branch.pk, config={"condition": "event", "event": "paid", "otherwise": no.key})
    services.automation_update(automation.pk, exit_segment_id=customers.pk)
    services.automation_set_status(automation.pk, "active")
    payer, other = make_contacts(2)
    (buyer,) = make_contacts(1, prefix="buyer")
    services.enrol(automation.pk, [payer.pk, other.pk, buyer.pk])
    services.event_record(name="paid", contact_id=payer.pk)
    scheduler.tick()
    assert Contact.objects.get(pk=payer.pk).attributes["paid"] == "yes"
    assert Contact.objects.get(pk=other.pk).attributes["paid"] == "no"
    run = Run.objects.get(automation=automation, contact=buyer)
    assert run.status == "exited" and run.exit_reason == "entered the exit segment"


def test_the_webhook_step_refuses_private_addresses_and_posts_the_run_signed(settings):
    from automations.selectors import webhook_secret
    from mailplatform.webhooks import verify

    automation = services.automation_create(name="Hook", trigger="manual")
    with pytest.raises(Invalid, match="private"):
        services.step_add(automation.pk, kind="webhook", config={"url": "http://127.0.0.1:9/hook"})

    received: list[dict] = []
    signed: list[tuple[bytes, str]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            signed.append((body, self.headers.get("Posthorn-Signature", "")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # loopback, for this test only
        step = services.step_add(
            automation.pk, kind="webhook", config={"url": f"http://127.0.0.1:{server.server_port}/hook"}
        )
        from contacts.models import Contact

        contact = Contact.objects.create(email="hooked@example.org")
        services.automation_set_status(automation.pk, "active")
        services.enrol(automation.pk, [contact.pk])
        run = Run.objects.get(automation=automation)
        services.webhook_call(run.pk, step.pk)
    finally:
        server.shutdown()
    assert received[0]["contact"]["email"] == "hooked@example.org" and received[0]["run"] == run.pk
    # Signed with the automation's secret (made with its first webhook step), as outbound webhooks are.
    automation.refresh_from_db()
    secret = webhook_secret(automation)
    assert secret.startswith("whsec_") and [verify(secret, body, header) for body, header in signed] == [True]
    assert not verify("whsec_another", *signed[0])
    assert "whsec_" not in automation.webhook_secret_encrypted  # stored encrypted
    assert run.events.filter(kind="webhook", detail="webhook: 204").exists()
    assert Step.objects.filter(automation=automation).count() == 1


def test_the_exit_sweep_ends_a_bounced_contacts_waiting_runs_at_once(series, make_contacts):
    from automations.triggers import scheduled_triggers
    from contacts.services import contacts_mark_bounced
    from delivery.models import Message

    automation = series()
    bounced, fine = make_contacts(2)
    services.enrol(automation.pk, [bounced.pk, fine.pk])
    scheduler.tick()  # mail A queued, both wait a day
    contacts_mark_bounced({bounced.pk: 1})
    assert scheduled_triggers()["exited"] == 1
    assert Run.objects.get(contact=bounced).status == "exited"
    assert Run.objects.get(contact=fine).status == "active"
    assert Message.objects.get(contact=bounced).state == "skipped"
    assert Message.objects.get(contact=fine).state == "queued"
