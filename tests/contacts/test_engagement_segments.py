"""Engagement segments: received / opened / clicked a mailing or any in the last N days, clicked a
link containing a text, did not open; human hits only unless the rule asks for machine hits.

The engagement rows are written through contacts' services, as delivery writes them
(contacts_record_sent with the mailing, engagement_record from the tracking flush).
"""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from contacts import selectors, services
from contacts.models import Contact, Engagement
from contacts.segments import SegmentError
from contacts.services import EngagementHit, engagement_record

pytestmark = pytest.mark.django_db

M1, M2, OLD = 9001, 9002, 9000


def rule(field, op, value="", **extra):
    return {"field": field, "op": op, "value": value, **extra}


def urls(contact_id, *, machine=False):
    from contacts.models import EngagementClick, EngagementLink

    by_id = dict(EngagementLink.objects.values_list("id", "url"))
    clicks = EngagementClick.objects.filter(contact_id=contact_id, machine=machine)
    return sorted(by_id[link_id] for link_id in clicks.values_list("link_id", flat=True))


def emails(*conditions, match="all"):
    rules = {"groups": [{"match": match, "conditions": list(conditions)}]}
    sql, params = selectors.segment_contact_ids_sql_for_rules(rules)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    return set(Contact.objects.filter(id__in=ids).values_list("email", flat=True))


@pytest.fixture
def crowd():
    """ann opened and clicked /pricing in M1; bob received M1, only a scanner opened and clicked it;
    cat received M1 and M2 and opened M2; dan received only an old mailing, 40 days ago;
    eve was never mailed."""
    now = timezone.now()
    people = {
        name: Contact.objects.create(email=f"{name}@example.com")
        for name in ("ann", "bob", "cat", "dan", "eve")
    }
    ids = {name: c.id for name, c in people.items()}
    services.contacts_record_sent(
        [ids["ann"], ids["bob"], ids["cat"]], now - dt.timedelta(hours=5), mailing_id=M1
    )
    services.contacts_record_sent([ids["cat"]], now - dt.timedelta(hours=2), mailing_id=M2)
    services.contacts_record_sent([ids["dan"]], now - dt.timedelta(days=40), mailing_id=OLD)
    hits = [
        EngagementHit(ids["ann"], M1, "opened", now - dt.timedelta(hours=4)),
        EngagementHit(
            ids["ann"], M1, "clicked", now - dt.timedelta(hours=4), url="https://shop.example/Pricing?x=1"
        ),
        EngagementHit(
            ids["ann"], M1, "clicked", now - dt.timedelta(hours=3), url="https://shop.example/Pricing?x=1"
        ),
        EngagementHit(ids["bob"], M1, "opened", now - dt.timedelta(hours=5), machine=True),
        EngagementHit(
            ids["bob"],
            M1,
            "clicked",
            now - dt.timedelta(hours=5),
            machine=True,
            url="https://shop.example/pricing",
        ),
        EngagementHit(ids["cat"], M2, "opened", now - dt.timedelta(hours=1)),
    ]
    engagement_record(hits)
    # Human hits also move the contact's own columns, as the tracking flush does.
    for hit in hits:
        if not hit.machine:
            (services.contact_record_open if hit.kind == "opened" else services.contact_record_click)(
                hit.contact_id, hit.at
            )
    return ids


def test_rows_are_compact_and_merge_hits(crowd):
    row = Engagement.objects.get(mailing_id=M1, contact_id=crowd["ann"])
    assert row.sent_at and row.opened_at and row.clicked_at
    assert urls(crowd["ann"]) == ["https://shop.example/Pricing?x=1"]  # once however often clicked
    assert row.machine_opened_at is None
    bob = Engagement.objects.get(mailing_id=M1, contact_id=crowd["bob"])
    assert bob.opened_at is None and bob.machine_opened_at is not None
    assert urls(crowd["bob"]) == [] and urls(crowd["bob"], machine=True) == ["https://shop.example/pricing"]
    assert Engagement.objects.count() == 5  # ann, bob, cat on M1; cat on M2; dan on OLD


def test_received_opened_clicked_a_mailing_human_by_default(crowd):
    assert emails(rule("received", "mailing", str(M1))) == {
        "ann@example.com",
        "bob@example.com",
        "cat@example.com",
    }
    assert emails(rule("opened", "mailing", str(M1))) == {"ann@example.com"}
    assert emails(rule("opened", "mailing", str(M1), machine=True)) == {"ann@example.com", "bob@example.com"}
    assert emails(rule("clicked", "mailing", M1)) == {"ann@example.com"}
    assert emails(rule("opened", "mailing", f"{M1}, {M2}")) == {"ann@example.com", "cat@example.com"}
    assert emails(rule("opened", "mailing", [M2])) == {"cat@example.com"}


def test_received_and_did_not_open_is_the_resend_audience(crowd):
    non_openers = emails(rule("received", "mailing", str(M1)), rule("opened", "not_mailing", str(M1)))
    assert non_openers == {"bob@example.com", "cat@example.com"}  # bob's open was a scanner's
    with_machine = emails(
        rule("received", "mailing", str(M1)), rule("opened", "not_mailing", str(M1), machine="true")
    )
    assert with_machine == {"cat@example.com"}


def test_any_mailing_in_the_last_days(crowd):
    assert emails(rule("received", "in_last_days", "30")) == {
        "ann@example.com",
        "bob@example.com",
        "cat@example.com",
    }
    assert emails(rule("received", "not_in_last_days", "30")) == {"dan@example.com", "eve@example.com"}
    assert emails(rule("opened", "in_last_days", "1")) == {"ann@example.com", "cat@example.com"}
    assert emails(rule("opened", "in_last_days", "1", machine=True)) == {
        "ann@example.com",
        "bob@example.com",
        "cat@example.com",
    }
    assert emails(rule("clicked", "not_in_last_days", "7")) == {
        "bob@example.com",
        "cat@example.com",
        "dan@example.com",
        "eve@example.com",
    }
    assert emails(rule("clicked", "not_in_last_days", "7", machine=True)) == {
        "cat@example.com",
        "dan@example.com",
        "eve@example.com",
    }


def test_clicked_a_link_containing(crowd):
    assert emails(rule("clicked_link", "contains", "PRICING")) == {"ann@example.com"}
    assert emails(rule("clicked_link", "contains", "pricing", machine=True)) == {
        "ann@example.com",
        "bob@example.com",
    }
    assert emails(rule("clicked_link", "contains", "checkout")) == set()
    assert "ann@example.com" not in emails(rule("clicked_link", "not_contains", "pricing"))
    # LIKE's wildcards are literal text: "%" and "_" match only themselves.
    assert emails(rule("clicked_link", "contains", "%")) == set()
    assert emails(rule("clicked_link", "contains", "x_1")) == set()
    assert emails(rule("clicked_link", "contains", "?x=1")) == {"ann@example.com"}


def test_engagement_combines_with_other_rules(crowd):
    # Two groups: opened M1 or M2, and an email test, in the same SQL as every other rule.
    rules = {
        "match": "all",
        "groups": [
            {
                "match": "any",
                "conditions": [rule("opened", "mailing", str(M1)), rule("opened", "mailing", str(M2))],
            },
            {"conditions": [rule("email", "starts_with", "c")]},
        ],
    }
    sql, params = selectors.segment_contact_ids_sql_for_rules(rules)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert [row[0] for row in cursor.fetchall()] == [crowd["cat"]]
    assert selectors.segment_count(rules) == 1


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (rule("opened", "mailing", ""), "choose a mailing"),
        (rule("opened", "mailing", "1; DROP TABLE contacts_contact"), "is not a mailing"),
        (rule("opened", "mailing", "-1"), "is not a mailing"),
        (rule("opened", "in_last_days", "x' OR '1'='1"), "whole number of days"),
        (rule("clicked_link", "contains", "   "), "enter a text"),
        (rule("opened", "contains", "x"), "does not apply"),
        (rule("opened", "mailing", ",".join(str(i) for i in range(200))), "at most 100"),
    ],
)
def test_hostile_or_malformed_values_are_refused(crowd, condition, message):
    with pytest.raises(SegmentError, match=message):
        emails(condition)


@pytest.mark.parametrize(
    "hostile", ["O'Brien", "\\", "%s", "--", ";", "%", "_", "'); DROP TABLE contacts_contact; --"]
)
def test_hostile_link_texts_are_values(crowd, hostile):
    contact = Contact.objects.create(email="zed@example.com")
    engagement_record(
        [EngagementHit(contact.id, M1, "clicked", timezone.now(), url=f"https://x.example/{hostile}")]
    )
    assert emails(rule("clicked_link", "contains", hostile)) == {"zed@example.com"}
    assert Contact.objects.count() == 6


def test_erasing_a_contact_erases_its_engagement(crowd, admin_user):
    services.contact_erase(Contact.objects.get(pk=crowd["ann"]), by=admin_user)
    assert not Engagement.objects.filter(contact_id=crowd["ann"]).exists() and urls(crowd["ann"]) == []
    # A hit for an erased contact writes nothing.
    assert engagement_record([EngagementHit(crowd["ann"], M1, "opened", timezone.now())]) == 0
    assert not Engagement.objects.filter(contact_id=crowd["ann"]).exists()


def test_builder_offers_sent_mailings_and_saves_an_engagement_segment(crowd, admin_client):
    from django.urls import reverse

    from contacts.models import Segment
    from delivery.models import Mailing

    mailing = Mailing.objects.create(
        name="Spring sale", subject="Spring is here", compiled={}, send_group="g", started_at=timezone.now()
    )
    Mailing.objects.create(name="never", subject="Not sent", compiled={}, send_group="h")
    engagement_record([EngagementHit(crowd["eve"], mailing.pk, "opened", timezone.now())])
    post = {
        "name": "Opened spring",
        "match": "all",
        "g0_match": "all",
        "g0_c0_field": "opened",
        "g0_c0_op": "mailing",
        "g0_c0_value": str(mailing.pk),
        "g0_c0_machine": "1",
    }
    drawn = admin_client.post(reverse("contacts:segment-builder"), post).content.decode()
    assert f'<option value="{mailing.pk}" selected>Spring sale: Spring is here' in drawn
    assert "Not sent" not in drawn
    assert 'name="g0_c0_machine" value="1" checked' in drawn
    days = admin_client.post(
        reverse("contacts:segment-builder"), {**post, "g0_c0_op": "in_last_days", "g0_c0_value": "30"}
    ).content.decode()
    assert 'aria-label="Value"' in days and 'aria-label="Mailing"' not in days
    assert "<strong>1</strong>" in admin_client.post(reverse("contacts:segment-count"), post).content.decode()
    admin_client.post(reverse("contacts:segment-create"), post)
    rules = Segment.objects.get(name="Opened spring").rules
    assert rules["groups"][0]["conditions"] == [
        {"field": "opened", "op": "mailing", "value": str(mailing.pk), "machine": True}
    ]
