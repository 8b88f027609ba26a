"""Dashboard pages: roles, keyset pagination, filters, lists, fields, suppressions, exports, GDPR."""

import csv
import io
import json

import pytest
from django.urls import reverse

from contacts import services
from contacts.models import (
    Contact,
    ContactStatus,
    CustomField,
    MailingList,
    Segment,
    Subscription,
    Suppression,
)
from mailplatform.models import AuditEntry
from tests.dbstate import changed_tables, db_fingerprint

pytestmark = pytest.mark.django_db


def test_contacts_keyset_pages_and_filters(admin_client):
    for i in range(120):
        Contact.objects.create(email=f"p{i:03d}@example.com", status="bounced" if i % 10 == 0 else "active")
    first = admin_client.get(reverse("contacts:index")).context
    assert [c.email for c in first["contacts"]][:2] == ["p119@example.com", "p118@example.com"]
    assert len(first["contacts"]) == 50 and first["older_query"] and not first["newer_query"]
    second = admin_client.get(reverse("contacts:index") + "?" + first["older_query"]).context
    assert second["contacts"][0].email == "p069@example.com" and second["newer_query"]
    back = admin_client.get(reverse("contacts:index") + "?" + second["newer_query"]).context
    assert [c.pk for c in back["contacts"]] == [c.pk for c in first["contacts"]]
    bounced = admin_client.get(reverse("contacts:index") + "?status=bounced").context["contacts"]
    assert len(bounced) == 12 and all(c.status == "bounced" for c in bounced)
    found = admin_client.get(reverse("contacts:index") + "?q=P11").context["contacts"]
    assert {c.email for c in found} == {f"p11{i}@example.com" for i in range(10)}
    # LIKE wildcards in the search are literal.
    assert admin_client.get(reverse("contacts:index") + "?q=p_1").context["contacts"] == []
    by_domain = admin_client.get(reverse("contacts:index") + "?q=@EXAMPLE.com&after=5").context["contacts"]
    assert [c.pk for c in by_domain] == sorted([c.pk for c in by_domain], reverse=True)


def test_search_output_is_escaped(admin_client):
    page = admin_client.get(
        reverse("contacts:index") + "?q=%3Cscript%3Ealert(1)%3C/script%3E"
    ).content.decode()
    assert "<script>alert(1)</script>" not in page


def test_developer_reads_but_cannot_change(developer_client):
    contact = Contact.objects.create(email="r@example.com")
    assert developer_client.get(reverse("contacts:index")).status_code == 200
    assert developer_client.get(reverse("contacts:detail", args=[contact.pk])).status_code == 200
    before = db_fingerprint()
    assert (
        developer_client.post(
            reverse("contacts:detail", args=[contact.pk]), {"status": "blocklisted"}
        ).status_code
        == 403
    )
    assert (
        developer_client.post(reverse("contacts:lists"), {"name": "x", "opt_in": "single"}).status_code == 403
    )
    assert developer_client.get(reverse("contacts:create")).status_code == 403
    assert developer_client.post(reverse("contacts:contact-erase", args=[contact.pk])).status_code == 403
    assert developer_client.post(reverse("contacts:suppressions"), {"value": "x.example"}).status_code == 403
    assert changed_tables(before) == []  # refused, and nothing done first


def test_create_edit_and_subscribe_contact(marketer_client):
    CustomField.objects.create(name="score", label="Score", type="number")
    news = MailingList.objects.create(name="News")
    response = marketer_client.post(
        reverse("contacts:create"),
        {"email": "New@Example.COM", "first_name": "N", "attr_score": "12", "lists": [news.pk]},
    )
    contact = Contact.objects.get()
    assert response.url == reverse("contacts:detail", args=[contact.pk])
    assert contact.email == "New@example.com" and contact.attributes == {"score": 12}
    assert Subscription.objects.get().status == "confirmed"
    again = marketer_client.post(reverse("contacts:create"), {"email": "new@example.com"})
    assert "already exists" in again.content.decode()
    bad = marketer_client.post(reverse("contacts:create"), {"email": "not an address"})
    assert bad.status_code == 200 and Contact.objects.count() == 1
    marketer_client.post(
        reverse("contacts:detail", args=[contact.pk]),
        {"first_name": "Nina", "last_name": "", "status": "active", "attr_score": "13.5"},
    )
    contact.refresh_from_db()
    assert contact.first_name == "Nina" and contact.attributes == {"score": 13.5}
    assert AuditEntry.objects.filter(action="contact.updated", actor_label="mara").exists()


def test_contact_page_has_timeline_slot_only_when_delivery_serves_it(admin_client):
    from django.urls import NoReverseMatch

    contact = Contact.objects.create(email="t@example.com")
    page = admin_client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    try:
        url = reverse("delivery:contact-timeline", args=[contact.pk])
    except NoReverseMatch:
        assert "Delivery timeline" not in page
    else:
        assert f'hx-get="{url}"' in page


def test_lists_fields_suppressions_pages(admin_client):
    admin_client.post(reverse("contacts:lists"), {"name": "Weekly", "opt_in": "double", "is_public": "on"})
    weekly = MailingList.objects.get(name="Weekly")
    assert weekly.is_public
    assert "Weekly" in admin_client.get(reverse("contacts:lists")).content.decode()
    assert (
        str(weekly.public_id)
        in admin_client.get(reverse("contacts:list-edit", args=[weekly.pk])).content.decode()
    )
    admin_client.post(reverse("contacts:fields"), {"name": "vip", "label": "VIP", "type": "boolean"})
    assert CustomField.objects.get(name="vip").type == "boolean"
    assert (
        admin_client.post(
            reverse("contacts:fields"), {"name": "email", "label": "x", "type": "text"}
        ).status_code
        == 200
    )
    admin_client.post(reverse("contacts:suppressions"), {"value": "@Spam.Example", "reason": "spam trap"})
    admin_client.post(reverse("contacts:suppressions"), {"value": "One@Example.org"})
    assert set(Suppression.objects.values_list("kind", "value")) == {
        ("domain", "spam.example"),
        ("address", "one@example.org"),
    }
    bad = admin_client.post(reverse("contacts:suppressions"), {"value": "not a thing!"})
    assert "neither an address nor a domain" in bad.content.decode()
    suppression = Suppression.objects.get(kind="domain")
    admin_client.post(reverse("contacts:suppression-delete", args=[suppression.pk]))
    assert not Suppression.objects.filter(pk=suppression.pk).exists()
    assert AuditEntry.objects.filter(action="suppression.removed").exists()


def test_list_export_streams_and_neutralises_formulas(admin_client):
    news = MailingList.objects.create(name="News")
    CustomField.objects.create(name="note", label="Note", type="text")
    for email, first, note in [("a@example.com", "=1+2", "@SUM(A1)"), ("b@example.com", "Bob", "-3")]:
        contact = Contact.objects.create(email=email, first_name=first, attributes={"note": note})
        Subscription.objects.create(contact=contact, mailing_list=news, status="confirmed")
    Contact.objects.create(email="off@example.com")
    response = admin_client.get(reverse("contacts:list-export", args=[news.pk]))
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["email", "first_name", "last_name"] and rows[0][-1] == "note"
    assert [r[0] for r in rows[1:]] == ["a@example.com", "b@example.com"]
    assert rows[1][1] == "'=1+2" and rows[1][-1] == "'@SUM(A1)" and rows[2][-1] == "'-3"
    assert AuditEntry.objects.filter(action="contacts.exported").exists()


def test_gdpr_export_and_erase(admin_client):
    news = MailingList.objects.create(name="News")
    contact = services.contact_create(email="me@example.com", first_name="Me", list_ids=[news.pk])
    data = json.loads(admin_client.get(reverse("contacts:contact-export", args=[contact.pk])).content)
    assert data["email"] == "me@example.com" and data["subscriptions"][0]["list"] == "News"
    assert data["consent"]["source"] == "dashboard"
    refused = admin_client.post(reverse("contacts:contact-erase", args=[contact.pk]), {"confirm_email": "x"})
    assert refused.status_code == 302 and Contact.objects.filter(pk=contact.pk).exists()
    admin_client.post(
        reverse("contacts:contact-erase", args=[contact.pk]), {"confirm_email": "ME@example.com"}
    )
    assert not Contact.objects.filter(pk=contact.pk).exists() and not Subscription.objects.exists()
    entry = AuditEntry.objects.get(action="contact.erased")
    assert entry.details == {"contact_id": contact.pk} and "me@example.com" not in json.dumps(entry.details)
    assert AuditEntry.objects.filter(action="contact.data_exported").exists()


def test_segment_builder_saves_and_counts(admin_client):
    CustomField.objects.create(name="score", label="Score", type="number")
    news = MailingList.objects.create(name="News")
    for i, score in enumerate([10, 60, 90]):
        c = Contact.objects.create(email=f"s{i}@example.com", attributes={"score": score})
        if i:
            Subscription.objects.create(contact=c, mailing_list=news, status="confirmed")
    post = {
        "name": "Engaged",
        "match": "all",
        "g0_match": "all",
        "g0_c0_field": "attr:score",
        "g0_c0_op": "gt",
        "g0_c0_value": "50",
        "g1_match": "any",
        "g1_c0_field": "list",
        "g1_c0_op": "in",
        "g1_c0_value": str(news.pk),
        "g1_c1_field": "email",
        "g1_c1_op": "starts_with",
        "g1_c1_value": "s0",
    }
    count = admin_client.post(reverse("contacts:segment-count"), post).content.decode()
    assert "<strong>2</strong>" in count
    wrong = admin_client.post(
        reverse("contacts:segment-count"), {**post, "g0_c0_value": "fifty"}
    ).content.decode()
    assert "group 1, condition 1" in wrong and "not a number" in wrong
    redrawn = admin_client.post(reverse("contacts:segment-builder"), {**post, "builder_action": "add_group"})
    assert 'name="g2_match"' in redrawn.content.decode()
    admin_client.post(reverse("contacts:segment-create"), post)
    segment = Segment.objects.get(name="Engaged")
    assert len(segment.rules["groups"]) == 2
    listed = admin_client.get(reverse("contacts:index") + f"?segment={segment.pk}").context["contacts"]
    assert {c.email for c in listed} == {"s1@example.com", "s2@example.com"}
    exported = b"".join(
        admin_client.get(reverse("contacts:segment-export", args=[segment.pk])).streaming_content
    )
    assert exported.decode().count("@example.com") == 2
    edit = admin_client.get(reverse("contacts:segment-edit", args=[segment.pk])).content.decode()
    assert 'value="attr:score" selected' in edit


def test_home_fragment(admin_client):
    news = MailingList.objects.create(name="News")
    contact = services.contact_create(email="h@example.com", list_ids=[news.pk])
    Contact.objects.create(email="b@example.com", status=ContactStatus.BOUNCED)
    services.contact_unsubscribe(contact.pk, list_ids=[news.pk], source="test")
    page = admin_client.get(reverse("contacts:home-fragment")).content.decode()
    assert "<svg" in page and "+1 confirmed" in page and "−1 unsubscribed" in page
    assert "<strong>2</strong>" in page


def test_preview_data_for_the_template_editor(admin_client):
    from django.conf import settings
    from django.test import Client

    CustomField.objects.create(name="born", label="Born", type="date")
    Contact.objects.create(
        email="Grace@Example.com", first_name="Grace", attributes={"born": "1906-12-09", "city": "Arlington"}
    )
    url = reverse("contacts:preview-data")
    data = admin_client.get(url, {"q": "grace@example.com"}).json()
    assert data == {
        "contact": {
            "email": "Grace@Example.com",
            "first_name": "Grace",
            "last_name": "",
            "language": settings.DEFAULT_LANGUAGE,
            "timezone": settings.DEFAULT_TIMEZONE,
            "born": "1906-12-09",
            "city": "Arlington",
        }
    }
    assert admin_client.get(url, {"q": "nobody@example.com"}).status_code == 404
    assert Client().get(url, {"q": "grace@example.com"}).status_code == 302  # anonymous: log in first
