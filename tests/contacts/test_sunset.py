"""The sunset policy: contacts with no human open or click in N months, after a re-engagement mail
they did not open, leave the active audience, reversibly and audited."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from contacts import selectors, services
from contacts.models import Contact, MailingList, Subscription
from contacts.services import EngagementHit, engagement_record
from mailplatform.models import AuditEntry

pytestmark = pytest.mark.django_db
REENGAGE, LATE = 7001, 7002


@pytest.fixture
def people():
    now = timezone.now()
    news = MailingList.objects.create(name="News")
    ids = {}
    for name in ("ann", "bob", "cat", "dan", "eve"):
        contact = Contact.objects.create(
            email=f"{name}@example.org", last_opened_at=now - dt.timedelta(days=400)
        )
        Subscription.objects.create(contact=contact, mailing_list=news, status="confirmed")
        ids[name] = contact.pk
    # bob and cat had the re-engagement mail two weeks ago; cat opened it. eve had it yesterday.
    services.contacts_record_sent([ids["bob"], ids["cat"]], now - dt.timedelta(days=14), mailing_id=REENGAGE)
    services.contacts_record_sent([ids["eve"]], now - dt.timedelta(days=1), mailing_id=REENGAGE)
    engagement_record([EngagementHit(ids["cat"], REENGAGE, "opened", now - dt.timedelta(days=13))])
    services.contact_record_open(ids["cat"], now - dt.timedelta(days=13))
    # ann opened something last month: engaged, whatever else.
    services.contacts_record_sent([ids["ann"]], now - dt.timedelta(days=14), mailing_id=REENGAGE)
    Contact.objects.filter(pk=ids["ann"]).update(last_opened_at=now - dt.timedelta(days=30))
    return news, ids


def _audience(news) -> set[str]:
    from django.db import connection

    sql, params = selectors.audience_sql(list_ids=[news.pk])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return set(
            Contact.objects.filter(id__in=[r[0] for r in cursor.fetchall()]).values_list("email", flat=True)
        )


def test_sunset_moves_only_the_unengaged_after_the_attempt_and_restore_brings_them_back(people):
    news, ids = people
    assert services.sunset_run(months=6, after_mailing_ids=[REENGAGE], dry_run=True) == 1
    assert _audience(news) == {f"{n}@example.org" for n in ("ann", "bob", "cat", "dan", "eve")}
    assert services.sunset_run(months=6, after_mailing_ids=[REENGAGE]) == 1
    # bob: no open in 6 months, had the attempt 2 weeks ago, did not open it. dan never had it; eve
    # is within the grace days; cat opened it; ann opened something recently.
    assert _audience(news) == {f"{n}@example.org" for n in ("ann", "cat", "dan", "eve")}
    bob = Contact.objects.get(pk=ids["bob"])
    assert bob.status == "active" and Subscription.objects.get(contact=bob).source == "sunset"
    assert AuditEntry.objects.filter(action="contacts.sunset").count() == 1
    assert services.sunset_restore() == 1
    assert "bob@example.org" in _audience(news)
    assert AuditEntry.objects.filter(action="contacts.sunset_restored").count() == 1


def test_the_command(people):
    out = StringIO()
    call_command("sunset", "--months", "6", "--after-mailing", str(REENGAGE), "--list", "News", stdout=out)
    assert "sunset 1 contact(s)" in out.getvalue()
    call_command("sunset", "--restore", stdout=out)
    assert "restored 1 subscription(s)" in out.getvalue()
    with pytest.raises(CommandError, match="re-engagement mailing"):
        call_command("sunset", "--months", "6")
    with pytest.raises(CommandError, match="no list named"):
        call_command("sunset", "--after-mailing", "1", "--list", "Nope")
