"""Automation fixtures: a list, a template, contacts, and the scheduler's clock."""

from __future__ import annotations

import datetime as dt

import pytest

HTML = '<p>Hi {{ contact.first_name | default: "there" }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


@pytest.fixture(autouse=True)
def _no_kick(monkeypatch):
    """The scheduler is run by the tests themselves here, not by a worker the broker would wake."""
    monkeypatch.setattr("automations.services.kick", lambda: None)


@pytest.fixture
def mailing_list(db):
    from contacts.models import MailingList

    return MailingList.objects.create(name="News", opt_in="single", is_public=True)


@pytest.fixture
def make_template(db):
    from templates.services import template_create

    def make(name: str = "Hello", subject: str = "Hello {{ contact.first_name }}", html: str = HTML):
        return template_create(name=name, subject=subject, html=html)

    return make


@pytest.fixture
def make_contacts(db):
    from contacts.models import Contact, Subscription, SubscriptionStatus

    def make(count: int, mailing_list=None, *, prefix: str = "p", attributes=None):
        contacts = Contact.objects.bulk_create(
            Contact(email=f"{prefix}{i}@example.org", first_name=f"P{i}", attributes=attributes or {})
            for i in range(count)
        )
        if mailing_list is not None:
            Subscription.objects.bulk_create(
                Subscription(contact=c, mailing_list=mailing_list, status=SubscriptionStatus.CONFIRMED)
                for c in contacts
            )
        return contacts

    return make


@pytest.fixture
def series(make_template):
    """An active automation: send, wait a day, branch on opened (deadline 2 days), send; otherwise end."""
    from automations.services import automation_create, automation_set_status, step_add, step_update

    def make(trigger: str = "manual", **fields):
        automation = automation_create(name="Series", trigger=trigger, **fields)
        first = make_template("First", "First for {{ contact.first_name }}")
        second = make_template("Second", "Second for {{ contact.first_name }}")
        step_add(automation.pk, kind="send", template_id=first.pk)
        step_add(automation.pk, kind="wait", config={"mode": "duration", "seconds": 86400})
        branch = step_add(
            automation.pk, kind="branch", config={"condition": "opened", "deadline_seconds": 2 * 86400}
        )
        step_add(automation.pk, kind="send", template_id=second.pk)
        end = step_add(automation.pk, kind="end")
        step_update(branch.pk, config={**branch.config, "otherwise": end.key})
        automation_set_status(automation.pk, "active")
        automation.refresh_from_db()
        return automation

    return make


def later(**delta) -> dt.datetime:
    from django.utils import timezone

    return timezone.now() + dt.timedelta(**delta)
