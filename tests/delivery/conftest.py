"""Fixtures for delivery: SMTP servers on loopback, relays pointing at them, contacts on a list."""

from __future__ import annotations

import pytest

from tests.delivery.smtp_servers import RecordingHandler, SmtpServer


@pytest.fixture(scope="session", autouse=True)
def _forget_stale_redis_state():
    """Relay and mailing ids restart with every test database: drop limits and slots of earlier runs."""
    from mailplatform.redis_cache import redis_client, redis_key

    client = redis_client()
    keys = list(client.scan_iter(redis_key("delivery", "*")))
    if keys:
        client.delete(*keys)
    yield


@pytest.fixture(autouse=True)
def _fresh_figures():
    from django.core.cache import cache

    cache.delete("delivery:home-figures")
    yield


@pytest.fixture
def sink():
    """A well-behaved SMTP server that offers PIPELINING and keeps what it receives."""
    with SmtpServer(RecordingHandler()) as server:
        yield server


@pytest.fixture
def make_relay(db):
    from delivery.models import Relay

    def make(server=None, *, port: int | None = None, **fields):
        count = Relay.objects.count() + 1
        return Relay.objects.create(
            name=fields.pop("name", f"relay-{count}"),
            host="127.0.0.1",
            port=port if port is not None else server.port,
            security="none",
            **fields,
        )

    return make


@pytest.fixture
def make_audience(db):
    """n contacts with a confirmed subscription to a new list; returns (list, contacts)."""
    from contacts.models import Contact, MailingList, Subscription

    def make(n: int, *, name: str = "News", start: int = 0):
        mailing_list = MailingList.objects.create(name=f"{name} {MailingList.objects.count() + 1}")
        contacts = Contact.objects.bulk_create(
            Contact(email=f"user{i}@example.org", first_name=f"User{i}") for i in range(start, start + n)
        )
        Subscription.objects.bulk_create(
            Subscription(contact=c, mailing_list=mailing_list, status="confirmed") for c in contacts
        )
        return mailing_list, contacts

    return make


@pytest.fixture
def compiled():
    from templates.compiler import compile_template

    return compile_template(
        subject="Hello {{ contact.first_name }}",
        html=(
            "<html><body><p>Hi {{ contact.first_name | default: 'there' }},</p>"
            '<p>News of the week.</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
        ),
    )


@pytest.fixture
def start_mailing(compiled, sending_identity):
    """Create a Mailing to a list's audience and plan it; returns the Mailing (not yet sending)."""
    from contacts.selectors import audience_sql
    from delivery import mailings

    def start(mailing_list, *, relays=(), **fields):
        mailing = mailings.mailing_create(
            name=fields.pop("name", "Weekly news"),
            compiled=fields.pop("compiled", compiled),
            from_email=fields.pop("from_email", "news@example.com"),
            from_name="Example News",
            list_ids=[mailing_list.pk],
            relay_ids=[r.pk for r in relays],
            **fields,
        )
        mailings.mailing_start(mailing.pk, audience=audience_sql(list_ids=[mailing_list.pk]))
        mailing.refresh_from_db()
        return mailing

    return start
