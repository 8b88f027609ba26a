"""The contract delivery and campaigns build on: audience SQL, claim-time checks, engagement writes."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from contacts import selectors, services
from contacts.models import (
    Contact,
    ContactStatus,
    CustomField,
    MailingList,
    Segment,
    Subscription,
    SubscriptionStatus,
)

pytestmark = pytest.mark.django_db


def _contact(
    email, *, status=ContactStatus.ACTIVE, lists=(), sub_status=SubscriptionStatus.CONFIRMED, **attrs
):
    contact = Contact.objects.create(email=email, status=status, attributes=attrs)
    for mailing_list in lists:
        Subscription.objects.create(contact=contact, mailing_list=mailing_list, status=sub_status)
    return contact


@pytest.fixture
def lists():
    return MailingList.objects.create(name="News"), MailingList.objects.create(name="Offers")


def _audience(**kwargs):
    sql, params = selectors.audience_sql(**kwargs)
    assert sql.startswith("SELECT c.id FROM")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def test_audience_is_active_confirmed_unsuppressed(lists):
    news, offers = lists
    ok = _contact("ok@example.com", lists=[news])
    also = _contact("also@example.org", lists=[offers])
    _contact("unconfirmed@example.com", lists=[news], sub_status=SubscriptionStatus.UNCONFIRMED)
    _contact("left@example.com", lists=[news], sub_status=SubscriptionStatus.UNSUBSCRIBED)
    for status in ContactStatus.values:
        if status != ContactStatus.ACTIVE:
            _contact(f"{status}@example.com", status=status, lists=[news])
    _contact("Suppressed@Example.com", lists=[news])
    _contact("someone@blocked.example", lists=[news])
    _contact("nolist@example.com")
    services.suppression_add("suppressed@example.com", reason="manual", source="test")
    services.suppression_add("BLOCKED.example", reason="manual", source="test")

    assert _audience(list_ids=[news.id]) == {ok.id}
    assert _audience(list_ids=[news.id, offers.id]) == {ok.id, also.id}
    assert selectors.audience_count(list_ids=[news.id, offers.id]) == 2
    assert _audience(list_ids=[news.id, offers.id], exclude_list_ids=[offers.id]) == {ok.id}


def test_audience_with_segment_and_excluded_segment(lists):
    news, _ = lists
    CustomField.objects.create(name="score", label="Score", type="number")
    high = _contact("high@example.com", lists=[news], score=90)
    low = _contact("low@example.com", lists=[news], score=9)
    text = _contact("text@example.com", lists=[news], score="lots")
    segment = Segment.objects.create(
        name="high", rules={"groups": [{"conditions": [{"field": "attr:score", "op": "gt", "value": "50"}]}]}
    )
    assert _audience(list_ids=[news.id], segment_id=segment.id) == {high.id}
    # A value of the wrong type is "not in the segment", so excluding the segment keeps it.
    assert _audience(list_ids=[news.id], exclude_segment_ids=[segment.id]) == {low.id, text.id}


def test_unsendable_ids_marketing_and_transactional(lists):
    news, _ = lists
    active = _contact("a@example.com", lists=[news])
    unsub = _contact("u@example.com", status=ContactStatus.UNSUBSCRIBED)
    bounced = _contact("b@example.com", status=ContactStatus.BOUNCED)
    domain = _contact("d@spam.example")
    services.suppression_add("spam.example", reason="r", source="test")
    ids = [active.id, unsub.id, bounced.id, domain.id, 999999]
    assert selectors.unsendable_contact_ids(ids) == {unsub.id, bounced.id, domain.id, 999999}
    assert selectors.unsendable_contact_ids(ids, transactional=True) == {bounced.id, domain.id, 999999}
    assert selectors.unsendable_contact_ids([]) == set()


def test_address_is_suppressed():
    _contact("gone@example.com", status=ContactStatus.COMPLAINED)
    _contact("left@example.com", status=ContactStatus.UNSUBSCRIBED)
    services.suppression_add("x@example.net", reason="r", source="test")
    services.suppression_add("@whole.example", reason="r", source="test")
    assert selectors.address_is_suppressed("GONE@example.com")
    assert not selectors.address_is_suppressed("left@example.com")
    assert selectors.address_is_suppressed(" X@Example.NET ")
    assert selectors.address_is_suppressed("anyone@WHOLE.example")
    assert not selectors.address_is_suppressed("anyone@example.org")


def test_merge_data_is_typed():
    CustomField.objects.create(name="birthday", label="Birthday", type="date")
    CustomField.objects.create(name="score", label="Score", type="number")
    contact = _contact("m@example.com", birthday="1990-02-03", score=5, plan="gold")
    Contact.objects.filter(pk=contact.pk).update(first_name="Ann")
    data = selectors.contact_merge_data([contact.id])[contact.id]
    assert data["first_name"] == "Ann" and data["email"] == "m@example.com"
    assert data["birthday"] == dt.date(1990, 2, 3) and data["score"] == 5 and data["plan"] == "gold"


def test_engagement_writes_never_go_backwards():
    contact = _contact("e@example.com")
    now = timezone.now()
    assert services.contacts_record_sent([contact.id], now) == 1
    services.contacts_record_sent([contact.id], now - dt.timedelta(days=1))
    services.contact_record_open(contact.id, now)
    services.contact_record_open(contact.id, now - dt.timedelta(days=2))
    services.contact_record_click(contact.id, now + dt.timedelta(minutes=1))
    contact.refresh_from_db()
    assert contact.last_sent_at == now
    assert contact.last_clicked_at == now + dt.timedelta(minutes=1)
    assert contact.last_opened_at == now + dt.timedelta(minutes=1)


def test_bounce_complaint_unsubscribe(lists, admin_user):
    news, offers = lists
    contact = _contact("x@example.com", lists=[news, offers])
    assert services.contact_record_soft_bounce(contact.id) == 1
    assert services.contact_record_soft_bounce(contact.id) == 2
    assert services.contact_unsubscribe(contact.id, list_ids=[news.id], source="one-click") == 1
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE
    services.contact_unsubscribe(contact.id, list_ids=None, source="preferences", by=admin_user)
    contact.refresh_from_db()
    assert contact.status == ContactStatus.UNSUBSCRIBED
    assert not contact.subscriptions.exclude(status=SubscriptionStatus.UNSUBSCRIBED).exists()
    services.contact_mark_bounced(contact.id, reason="550 no such user", source="dsn")
    contact.refresh_from_db()
    assert contact.status == ContactStatus.BOUNCED and contact.bounce_count == 1
    services.contact_mark_complained(contact.id, source="arf")
    contact.refresh_from_db()
    assert contact.status == ContactStatus.COMPLAINED
    assert selectors.address_is_suppressed("x@example.com")
    from mailplatform.models import AuditEntry

    assert AuditEntry.objects.filter(action="contact.unsubscribed", actor_label="boss").count() == 1


def test_soft_and_hard_bounces_are_recorded_together(lists, django_assert_num_queries):
    news, _ = lists
    both = _contact("both@example.com", lists=[news])
    unsubscribed = _contact("u@example.com", status=ContactStatus.UNSUBSCRIBED)
    soft_only = _contact("s@example.com")
    blocked = _contact("b@example.com", status=ContactStatus.BLOCKLISTED)
    before = {c.email: c.updated_at for c in Contact.objects.all()}
    with django_assert_num_queries(1):  # one statement whatever the number of contacts
        services.contacts_record_bounces(
            {both.id: 1, soft_only.id: 2}, {both.id: 1, unsubscribed.id: 3, blocked.id: 1}
        )
    states = {c.email: (c.status, c.bounce_count, c.soft_bounce_count) for c in Contact.objects.all()}
    assert states == {
        "both@example.com": (ContactStatus.BOUNCED, 1, 1),
        "u@example.com": (ContactStatus.BOUNCED, 3, 0),
        "s@example.com": (ContactStatus.ACTIVE, 0, 2),
        "b@example.com": (ContactStatus.BLOCKLISTED, 1, 0),
    }
    # a soft bounce alone changes nothing a person would see
    assert Contact.objects.get(pk=soft_only.pk).updated_at == before["s@example.com"]
    assert Contact.objects.get(pk=both.pk).updated_at > before["both@example.com"]


def test_set_wise_bounce_and_complaint_writes(lists):
    news, _ = lists
    active = _contact("a@example.com", lists=[news])
    complained = _contact("c@example.com", status=ContactStatus.COMPLAINED)
    blocked = _contact("b@example.com", status=ContactStatus.BLOCKLISTED, lists=[news])
    services.contacts_mark_bounced({active.id: 2, complained.id: 1})
    services.contacts_record_bounces({blocked.id: 3}, {})
    services.contacts_mark_complained({blocked.id: blocked.email}, source="arf")
    states = {c.email: (c.status, c.bounce_count, c.soft_bounce_count) for c in Contact.objects.all()}
    assert states == {
        "a@example.com": (ContactStatus.BOUNCED, 2, 0),
        "c@example.com": (ContactStatus.COMPLAINED, 1, 0),
        "b@example.com": (ContactStatus.BLOCKLISTED, 0, 3),
    }
    assert not Subscription.objects.filter(contact=blocked, status=SubscriptionStatus.CONFIRMED).exists()
    assert selectors.address_is_suppressed("b@example.com")
    # One bad value in a batch is skipped, the others are kept; repeats are no error.
    assert (
        services.suppressions_add(
            ["not an address", "d@example.com", "D@example.com"], reason="r", source="t"
        )
        == 1
    )
    assert services.suppressions_add(["d@example.com"], reason="r", source="t") == 1
    assert selectors.address_is_suppressed("d@example.com")


def test_email_unique_ignoring_case():
    from django.db import IntegrityError, transaction

    _contact("Case@Example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        _contact("case@example.COM")
