"""Dashboard pages, the contact timeline and home fragments, and the RFC 8058 unsubscribe endpoint."""

from __future__ import annotations

import pytest
from django.urls import reverse

from delivery import engine, ledger, verp
from delivery.models import Message, MessageEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_mailing(make_relay, make_audience, start_mailing, sink):
    make_relay(sink)
    mailing_list, contacts = make_audience(3)
    mailing = start_mailing(mailing_list)
    engine.drain(mailing.pk)
    return mailing, mailing_list, contacts


def test_one_click_post_unsubscribes_from_the_mailings_lists(client, sent_mailing):
    from contacts.models import Subscription

    mailing, mailing_list, contacts = sent_mailing
    message = Message.objects.get(mailing=mailing, contact=contacts[0])
    url = reverse("delivery:unsubscribe", args=[verp.message_token(message.pk, "unsubscribe")])
    # A GET (what link scanners do) shows a page and changes nothing.
    page = client.get(url)
    assert page.status_code == 200 and "Unsubscribe" in page.content.decode()
    assert Subscription.objects.get(contact=contacts[0], mailing_list=mailing_list).status == "confirmed"
    # The mailbox provider's POST, without cookies or CSRF token, unsubscribes at once.
    response = client.post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "unsubscribed" in response.content.decode()
    assert Subscription.objects.get(contact=contacts[0], mailing_list=mailing_list).status == "unsubscribed"
    assert Subscription.objects.get(contact=contacts[1], mailing_list=mailing_list).status == "confirmed"
    event = MessageEvent.objects.get(message=message, kind="unsubscribed")
    assert event.data["list_ids"] == [mailing_list.pk]
    # Posting again is harmless.
    client.post(url)
    assert MessageEvent.objects.filter(message=message, kind="unsubscribed").count() == 1


def test_forged_unsubscribe_tokens_are_refused(client, sent_mailing):
    mailing, _, _ = sent_mailing
    message = Message.objects.filter(mailing=mailing).first()
    forged = verp.message_token(message.pk, "bounce")  # a valid token, for another purpose
    assert client.post(reverse("delivery:unsubscribe", args=[forged])).status_code == 404
    assert client.get(reverse("delivery:unsubscribe", args=["zzz-aaaaaaaa"])).status_code == 404
    assert not MessageEvent.objects.filter(kind="unsubscribed").exists()


def test_the_header_link_is_the_endpoint(client, sent_mailing, sink):
    import email
    import email.policy

    from contacts.models import Subscription

    received = sink.handler.received[0]
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    https = parsed["List-Unsubscribe"].split(",")[0].strip(" <>")
    path = "/" + https.split("://", 1)[1].split("/", 1)[1]
    assert client.post(path).status_code == 200
    assert Subscription.objects.filter(contact__email=received.rcpt_tos[0], status="unsubscribed").exists()


def test_delivery_index_mailing_page_and_progress(marketer_client, sent_mailing):
    mailing, _, _ = sent_mailing
    index = marketer_client.get(reverse("delivery:index")).content.decode()
    assert mailing.name in index and "3 sent" in index
    page = marketer_client.get(reverse("delivery:mailing", args=[mailing.pk])).content.decode()
    assert "Weekly news" in page and "news@example.com" in page
    fragment = marketer_client.get(reverse("delivery:mailing-progress", args=[mailing.pk])).content.decode()
    assert 'aria-valuenow="100"' in fragment


def test_developers_cannot_pause(developer_client, make_relay, make_audience, start_mailing, sink):
    make_relay(sink)
    mailing = start_mailing(make_audience(2)[0])
    assert (
        developer_client.post(reverse("delivery:mailing-action", args=[mailing.pk, "pause"])).status_code
        == 403
    )
    mailing.refresh_from_db()
    assert mailing.state == "sending"


def test_pause_button(marketer_client, make_relay, make_audience, start_mailing, sink):
    make_relay(sink)
    mailing = start_mailing(make_audience(2)[0])
    url = reverse("delivery:mailing-action", args=[mailing.pk, "pause"])
    assert marketer_client.get(url).status_code == 405
    assert marketer_client.post(url).status_code == 302
    mailing.refresh_from_db()
    assert mailing.state == "paused"
    assert (
        marketer_client.post(reverse("delivery:mailing-action", args=[mailing.pk, "explode"])).status_code
        == 404
    )


def test_ledger_search_shows_the_relay_reply(developer_client, sent_mailing):
    response = developer_client.get(reverse("delivery:ledger"), {"address": "USER1@example.org"})
    page = response.content.decode()
    assert "user1@example.org" in page and "2.0.0 OK queued" in page and "user2@example.org" not in page
    prefix = developer_client.get(reverse("delivery:ledger"), {"address": "user*"}).content.decode()
    assert "user0@example.org" in prefix and "user2@example.org" in prefix


def test_contact_timeline_fragment(marketer_client, sent_mailing):
    mailing, _, contacts = sent_mailing
    message = Message.objects.get(mailing=mailing, contact=contacts[0])
    ledger.message_event_record(message.pk, "opened", {"ip": "203.0.113.9"})
    html = marketer_client.get(reverse("delivery:contact-timeline", args=[contacts[0].pk])).content.decode()
    assert "Weekly news" in html and "sent" in html and "opened" in html
    empty = marketer_client.get(reverse("delivery:contact-timeline", args=[999999])).content.decode()
    assert "No mail has been sent" in empty


def test_home_fragment_needs_a_login(client):
    assert client.get(reverse("delivery:home-fragment")).status_code == 302


def test_home_fragment(marketer_client, sent_mailing):
    html = marketer_client.get(reverse("delivery:home-fragment")).content.decode()
    assert "sent in 24 h" in html and ">3<" in html


def test_progress_selector(sent_mailing):
    from delivery.selectors import mailing_progress

    mailing, _, _ = sent_mailing
    progress = mailing_progress(mailing.pk)
    assert progress["total"] == 3 and progress["sent"] == 3 and progress["queued"] == 0
    assert progress["percent"] == 100 and progress["eta_s"] is None
    assert set(progress) >= {
        "total",
        "queued",
        "sending",
        "sent",
        "deferred",
        "failed",
        "skipped",
        "rate_per_s",
        "eta_s",
    }


def test_message_event_record_validates_the_kind(sent_mailing):
    mailing, _, _ = sent_mailing
    message = Message.objects.filter(mailing=mailing).first()
    event = ledger.message_event_record(message.pk, "clicked", {"url": "https://example.com"})
    assert event.mailing_id == mailing.pk
    with pytest.raises(ValueError, match="unknown event kind"):
        ledger.message_event_record(message.pk, "exploded")
    with pytest.raises(Message.DoesNotExist):
        ledger.message_event_record(99999999, "opened")
