"""Campaign fixtures: a real aiosmtpd relay on loopback, an audience, a template."""

from __future__ import annotations

import pytest

from tests.delivery.smtp_servers import RecordingHandler, SmtpServer

HTML = """<html><body>
<p>Hi {{ contact.first_name | default: "there" }},</p>
<p><a href="https://shop.example.com/spring?a=1&amp;b=2">See the spring sale</a></p>
<p><a href="https://blog.example.com/news">Read the news</a></p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


@pytest.fixture
def relay_server(sending_identity):
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        from delivery.relays import relay_save

        relay_save(name="test relay", host="127.0.0.1", port=server.port, security="none", max_connections=2)
        yield handler


@pytest.fixture
def template(db):
    from templates.services import template_create

    return template_create(name="Spring", subject="Spring is here, {{ contact.first_name }}", html=HTML)


@pytest.fixture
def make_audience(db):
    from contacts.models import Contact, MailingList, Subscription, SubscriptionStatus

    def make(count: int, *, name: str = "Customers", domain: str = "example.org", start: int = 0):
        mailing_list, _ = MailingList.objects.get_or_create(name=name)
        for i in range(start, start + count):
            contact = Contact.objects.create(email=f"person{i}@{domain}", first_name=f"P{i}")
            Subscription.objects.create(
                contact=contact, mailing_list=mailing_list, status=SubscriptionStatus.CONFIRMED
            )
        return mailing_list

    return make


@pytest.fixture
def campaign_factory(template, make_audience):
    from campaigns.services import campaign_create

    def make(count: int = 5, **fields):
        mailing_list = fields.pop("mailing_list", None) or make_audience(count)
        return campaign_create(
            name=fields.pop("name", "Spring sale"), template=template, lists=[mailing_list], **fields
        )

    return make


@pytest.fixture
def clean_tracking_buffer(settings):
    from delivery import tracking

    tracking.push_pending()
    tracking._redis().delete(tracking.buffer_key())
    yield
    tracking.push_pending()
    tracking._redis().delete(tracking.buffer_key())


from tests.delivery.conftest import _forget_stale_redis_state  # noqa: E402,F401 - autouse: stale runner slots
