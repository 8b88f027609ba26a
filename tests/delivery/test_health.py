"""Sender health: rates per sending domain and receiving domain group, per day and per hour, read
from a real send's ledger (aiosmtpd on loopback refusing, deferring, accepting) and its events;
the page draws them with Gmail's and Yahoo's thresholds."""

from __future__ import annotations

import threading

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery import engine
from delivery.health import sender_health
from delivery.ledger import record_bounces, requeue_due
from delivery.models import Message
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer


def _list(addresses: list[str]):
    from contacts.models import Contact, MailingList, Subscription

    mailing_list = MailingList.objects.create(name=f"Health {MailingList.objects.count() + 1}")
    contacts = Contact.objects.bulk_create(Contact(email=a) for a in addresses)
    Subscription.objects.bulk_create(
        Subscription(contact=c, mailing_list=mailing_list, status="confirmed") for c in contacts
    )
    return mailing_list


class Receiver:
    """Refuses five example.org addresses, defers four Yahoo ones once, accepts the rest."""

    def __init__(self) -> None:
        self.deferred: set[str] = set()
        self.lock = threading.Lock()

    def rcpt(self, address: str) -> str | None:
        name = address.partition("@")[0]
        if address.endswith("@example.org") and name in {f"e{i}" for i in range(5)}:
            return "550 5.1.1 no such user"
        if address.endswith("@yahoo.com") and name in {f"y{i}" for i in range(4)}:
            with self.lock:
                if address not in self.deferred:
                    self.deferred.add(address)
                    return "451 4.3.0 try again later"
        return None


@pytest.mark.slow
def test_health_reads_rates_per_sending_domain_and_receiving_group(
    transactional_db, settings, make_relay, start_mailing, admin_client
):
    from delivery.identities import identity_save

    settings.DELIVERY_RETRY_BASE_SECONDS = 0
    identity_save(address="other.test")
    receiver = Receiver()
    with SmtpServer(RecordingHandler(rcpt_reply=receiver.rcpt)) as server:
        make_relay(server)
        news = start_mailing(
            _list([f"g{i}@gmail.com" for i in range(100)] + [f"e{i}@example.org" for i in range(100)]),
            from_email="news@example.com",
        )
        shop = start_mailing(_list([f"y{i}@yahoo.com" for i in range(50)]), from_email="shop@other.test")
        engine.drain(news.pk, seconds=30)
        engine.drain(shop.pk, seconds=30)
        requeue_due()  # the watchdog's step: the four deferred ones are due again at once
        engine.drain(shop.pk, seconds=30)
    now = timezone.now()
    # Gmail's feedback loop: one complaint of 100 (1 %); two example.org readers unsubscribe.
    gmail = Message.objects.filter(mailing=news, email__endswith="@gmail.com").order_by("id")
    example = Message.objects.filter(mailing=news, email__endswith="@example.org", state="sent").order_by(
        "id"
    )
    record_bounces(
        [(gmail[0].pk, news.pk, "complained", {}, now)]
        + [(m.pk, news.pk, "unsubscribed", {}, now) for m in example[:2]]
    )

    health = sender_health()
    sending = {row["name"]: row for row in health["sending"]}
    assert sending["example.com"]["attempted"] == 200
    assert sending["example.com"]["rates"]["bounced"] == 2.5  # 5 refused at RCPT, hard
    assert sending["example.com"]["rates"]["delivered"] == 97.5
    assert sending["example.com"]["rates"]["complained"] == 0.5
    assert sending["example.com"]["rates"]["unsubscribed"] == 1.0
    assert "bounces 2 %" in sending["example.com"]["over"]
    assert "Gmail/Yahoo limit 0.3 %" in sending["example.com"]["over"]
    assert sending["other.test"]["attempted"] == 50 and sending["other.test"]["rates"]["deferred"] == 8.0
    receiving = {row["name"]: row for row in health["receiving"]}
    assert set(receiving) == {"gmail", "example.org", "yahoo"}  # gmail.com under its group's name
    assert receiving["gmail"]["rates"]["complained"] == 1.0 and receiving["gmail"]["rates"]["bounced"] == 0
    assert receiving["example.org"]["rates"]["bounced"] == 5.0 and receiving["example.org"]["over"] == [
        "bounces 2 %"
    ]
    assert receiving["yahoo"]["rates"]["deferred"] == 8.0

    # Over time: today's bucket and this hour's carry it; the days before had nothing attempted.
    for series, steps in ((health["daily"], 30), (health["hourly"], 48)):
        assert len(series) == steps and series[-1]["attempted"] == 250
        assert all(point["attempted"] == 0 and point["rates"]["delivered"] is None for point in series[:-2])
    only_gmail = sender_health(sending="example.com", receiving="gmail")
    assert (
        only_gmail["daily"][-1]["attempted"] == 100 and only_gmail["daily"][-1]["rates"]["complained"] == 1.0
    )

    page = admin_client.get(reverse("delivery:health"), {"receiving": "gmail"}).content.decode()
    assert page.count('data-threshold="0.3"') == 2 and page.count('data-threshold="0.1"') == 2  # day, hour
    assert page.count('data-threshold="2"') == 2
    assert 'data-series="complained"' not in page  # one point per chart: drawn as a dot, no line
    assert "1% complained of 100" in page
    assert 'data-health-row="gmail"' in page and "over Gmail/Yahoo limit 0.3 %" in page


def test_the_health_page_is_for_everyone_on_the_dashboard(marketer_client):
    page = marketer_client.get(reverse("delivery:health")).content.decode()
    assert "Nothing attempted in the last 30 days." in page
