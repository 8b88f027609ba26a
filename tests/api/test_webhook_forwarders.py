"""Event rows written by delivery and contacts reach subscribed webhooks, once each."""

from __future__ import annotations

import pytest

from mailplatform import services
from mailplatform.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscribed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    endpoint, _ = services.webhook_endpoint_create(
        url="http://127.0.0.1:9/hook",
        event_types=["bounced", "delivered", "subscribed", "unsubscribed"],
        by=None,
    )
    return endpoint


def _message():
    from delivery.transactional import transactional_send
    from templates.services import template_create

    template = template_create(name="T", subject="s", html="<p>x</p>")
    return transactional_send(template_id=template.pk, to="someone@example.com")


def test_message_events_forwarded_once_one_step_behind(subscribed, django_capture_on_commit_callbacks):
    from delivery.ledger import message_event_record
    from delivery.webhook_tasks import forward_message_events

    message = _message()
    message_event_record(message.pk, "sent")  # before the first run: history is not replayed
    assert forward_message_events() == 0
    message_event_record(message.pk, "bounced", {"kind": "hard", "diagnostic": "550 5.1.1 no such user"})
    message_event_record(message.pk, "opened")  # nobody subscribed to opened
    assert forward_message_events() == 0  # sets the horizon: a late commit still gets its turn
    assert forward_message_events() == 1
    assert forward_message_events() == 0
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "bounced"
    assert delivery.payload["email"] == "someone@example.com"
    assert delivery.payload["message_id"] == message.pk
    assert delivery.payload["details"]["kind"] == "hard"


def test_batches_continue_where_they_stopped(subscribed):
    from delivery.ledger import message_event_record
    from delivery.webhook_tasks import forward_message_events

    message = _message()
    forward_message_events()
    for _ in range(5):
        message_event_record(message.pk, "sent")
    forward_message_events(batch=2)
    assert [forward_message_events(batch=2) for _ in range(4)] == [2, 2, 1, 0]
    assert WebhookDelivery.objects.filter(event_type="delivered").count() == 5


def test_confirmed_subscriptions_but_not_imports(subscribed):
    from contacts.models import MailingList
    from contacts.services import contact_create, contact_subscribe
    from contacts.webhook_tasks import forward_subscriptions

    newsletter = MailingList.objects.create(name="News", opt_in="single")
    forward_subscriptions()
    contact = contact_create(email="joiner@example.com")
    contact_subscribe(contact, newsletter, confirmed=True, source="form")
    imported = contact_create(email="imported@example.com")
    contact_subscribe(imported, newsletter, confirmed=True, source="import")
    pending = contact_create(email="pending@example.com")
    contact_subscribe(pending, newsletter, confirmed=False, source="form")
    forward_subscriptions()
    assert forward_subscriptions() == 1
    assert forward_subscriptions() == 0
    payload = WebhookDelivery.objects.get().payload
    assert payload["email"] == "joiner@example.com" and payload["list_name"] == "News"


def test_nothing_is_kept_when_nobody_listens(settings):
    from delivery.ledger import message_event_record
    from delivery.webhook_tasks import forward_message_events

    message = _message()
    forward_message_events()
    message_event_record(message.pk, "bounced")
    forward_message_events()
    forward_message_events()
    assert not WebhookDelivery.objects.exists()


def test_every_unsubscribe_once_whoever_caused_it(subscribed):
    from contacts.models import MailingList
    from contacts.services import contact_create, contact_unsubscribe
    from contacts.webhook_tasks import forward_unsubscriptions
    from delivery.ledger import message_event_record
    from delivery.webhook_tasks import forward_message_events

    forward_message_events()
    news, offers = MailingList.objects.create(name="News"), MailingList.objects.create(name="Offers")
    contact = contact_create(email="leaver@example.com", list_ids=[news.pk, offers.pk])
    forward_unsubscriptions()
    contact_unsubscribe(contact.pk, list_ids=[offers.pk], source="preferences")
    message = _message()
    message_event_record(message.pk, "unsubscribed")  # one-click: reported by contacts, not twice
    forward_unsubscriptions()
    assert forward_unsubscriptions() == 1
    forward_message_events()
    forward_message_events()
    assert WebhookDelivery.objects.filter(event_type="unsubscribed").count() == 1
    payload = WebhookDelivery.objects.get(event_type="unsubscribed").payload
    assert payload["list_name"] == "Offers" and payload["email"] == "leaver@example.com"


def test_every_scheduled_webhook_task_is_registered():
    from mailplatform.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values() if "webhook" in entry["task"]}
    assert scheduled == {
        "mailplatform.tasks.webhook_sweep",
        "delivery.webhook_tasks.forward_message_events",
        "contacts.webhook_tasks.forward_subscriptions",
    }
    assert scheduled <= set(app.tasks)
