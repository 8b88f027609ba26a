"""Triggers: joined a list (after confirmation on double opt-in), events, segments, date fields."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from automations import scheduler, services
from automations.models import Run

pytestmark = pytest.mark.django_db


def test_joining_a_single_opt_in_list_starts_the_welcome_series(
    mailing_list, django_capture_on_commit_callbacks
):
    from automations.recipes import recipe_create
    from contacts.services import public_subscribe

    automation = recipe_create("welcome", list_id=mailing_list.pk)
    services.automation_set_status(automation.pk, "active")
    with django_capture_on_commit_callbacks(execute=True):
        public_subscribe(mailing_list, email="new@example.org", first_name="Nia")
    run = Run.objects.get(automation=automation)
    assert run.contact.email == "new@example.org"
    scheduler.tick()
    from delivery.models import Message

    message = Message.objects.get(contact=run.contact, idempotency_key__startswith="automation:")
    assert message.mailing.kind == "marketing" and message.mailing.list_ids == [mailing_list.pk]


def test_a_double_opt_in_list_starts_it_only_on_confirmation(django_capture_on_commit_callbacks):
    from automations.recipes import recipe_create
    from contacts.models import MailingList
    from contacts.services import public_subscribe, subscription_confirm

    double = MailingList.objects.create(name="Double", opt_in="double", is_public=True)
    automation = recipe_create("welcome", list_id=double.pk)
    services.automation_set_status(automation.pk, "active")
    with django_capture_on_commit_callbacks(execute=True):
        subscription = public_subscribe(double, email="careful@example.org")
    assert not Run.objects.filter(automation=automation).exists()
    with django_capture_on_commit_callbacks(execute=True):
        subscription_confirm(subscription.pk)
    assert Run.objects.filter(automation=automation, contact__email="careful@example.org").count() == 1


def test_an_event_starts_runs_and_its_properties_reach_the_mail(make_template):
    from automations.services import automation_create, automation_set_status, event_record, step_add
    from delivery.models import Message

    automation = automation_create(
        name="Cart", trigger="event", trigger_event="cart_abandoned", entry_policy="every_time"
    )
    template = make_template("Cart", "Your {{ event.item }}")
    step_add(automation.pk, kind="send", template_id=template.pk)
    automation_set_status(automation.pk, "active")
    event, started = event_record(name="cart_abandoned", email="shopper@example.org", create=True,
                                  properties={"item": "red shoes"})  # fmt: skip
    assert started == 1
    scheduler.tick()
    message = Message.objects.get(contact_id=event.contact_id)
    assert message.data == {"event": {"name": "cart_abandoned", "item": "red shoes",
                                      "properties": {"item": "red shoes"}, "at": event.at.isoformat()}}  # fmt: skip
    with pytest.raises(Exception, match="no contact"):
        event_record(name="cart_abandoned", email="stranger@example.org")


def test_entering_a_segment_is_incremental(series, make_contacts):
    from automations.triggers import segment_entries
    from contacts.services import segment_save

    segment = segment_save(None, name="VIP", rules={"match": "all", "groups": [{"match": "all", "conditions": [
        {"field": "email", "op": "contains", "value": "vip"}]}]})  # fmt: skip
    automation = series(trigger="segment_entered", trigger_segment_id=segment.pk)
    make_contacts(2, prefix="vip")
    make_contacts(2, prefix="plain")
    assert segment_entries(automation) == 2
    assert segment_entries(automation) == 0  # nobody new
    make_contacts(1, prefix="vipnew")
    assert segment_entries(automation) == 1


def test_a_date_field_comes_round_at_the_local_hour(make_contacts, make_template):
    from automations.recipes import recipe_create
    from automations.triggers import date_field_entries
    from contacts.models import Contact, CustomField

    CustomField.objects.create(name="birthday", label="Birthday", type="date")
    now = timezone.now()
    today_utc = now.astimezone(dt.UTC)
    (born_today,) = make_contacts(1, prefix="today")
    Contact.objects.filter(pk=born_today.pk).update(
        timezone="UTC", attributes={"birthday": f"1990-{today_utc:%m-%d}"}
    )
    (born_other,) = make_contacts(1, prefix="other")
    other_day = (today_utc + dt.timedelta(days=40)).strftime("%m-%d")
    Contact.objects.filter(pk=born_other.pk).update(attributes={"birthday": f"1990-{other_day}"})
    automation = recipe_create("birthday", field="birthday")
    services.automation_set_status(automation.pk, "active")
    expected = 1 if today_utc.hour >= 9 else 0
    assert date_field_entries(automation) == expected
    assert date_field_entries(automation) == 0  # once a year
