"""The engine in this process against real SMTP servers on loopback: what arrives, what the ledger says."""

from __future__ import annotations

import email
import email.policy
import time

import pytest

from delivery import engine, identities, ledger, mailings, verp
from delivery.models import Mailing, Message, MessageEvent
from mailplatform.errors import PlatformError as ValidationError
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer, free_port

pytestmark = pytest.mark.django_db


def _states(mailing):
    return dict(Message.objects.filter(mailing=mailing).values_list("email", "state"))


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_every_contact_gets_exactly_one_message(make_relay, make_audience, start_mailing, pipelining):
    handler = RecordingHandler(pipelining=pipelining)
    with SmtpServer(handler) as server:
        relay = make_relay(server)
        mailing_list, contacts = make_audience(40)
        mailing = start_mailing(mailing_list)
        result = engine.drain(mailing.pk)
    assert result.sent == 40 and result.finished
    recipients = handler.recipients()
    assert sorted(recipients) == sorted(c.email for c in contacts)
    mailing.refresh_from_db()
    assert mailing.state == Mailing.State.DONE and mailing.finished_at
    sent = Message.objects.filter(mailing=mailing)
    assert all(
        m.state == "sent" and m.relay_id == relay.pk and m.smtp_code == 250 and m.sent_at for m in sent
    )
    # The envelope sender is the signed VERP address of that very Message.
    by_rcpt = {m.rcpt_tos[0]: m for m in handler.received}
    for message in sent:
        assert verp.message_id_from_address(by_rcpt[message.email].mail_from) == message.pk
    # Engagement on the contact, written through contacts' services.
    from contacts.models import Contact

    assert Contact.objects.filter(pk__in=[c.pk for c in contacts], last_sent_at__isnull=False).count() == 40
    # ... and each recipient's engagement row for this mailing says received.
    from contacts.models import Engagement

    received = Engagement.objects.filter(mailing_id=mailing.pk, sent_at__isnull=False)
    assert sorted(received.values_list("contact_id", flat=True)) == sorted(c.pk for c in contacts)


def test_message_content_and_headers(make_relay, make_audience, start_mailing, sink, settings):
    settings.SITE_URL = "https://mail.example.com"
    make_relay(sink)
    mailing_list, contacts = make_audience(1)
    mailing = start_mailing(mailing_list, headers={"X-Campaign": "spring"})
    engine.drain(mailing.pk)
    [received] = sink.handler.received
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    message = Message.objects.get(mailing=mailing)
    assert parsed["Subject"] == "Hello User0"
    assert f".{message.pk}@example.com>" in parsed["Message-ID"]
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://mail.example.com/delivery/u/" in parsed["List-Unsubscribe"]
    assert "mailto:unsubscribe+" in parsed["List-Unsubscribe"]
    assert parsed["List-Id"] == f"<list-{mailing_list.pk}.{settings.BOUNCE_DOMAIN}>"
    assert parsed["Feedback-ID"].startswith(f"{mailing.pk}:")
    assert parsed["X-Campaign"] == "spring"
    html = parsed.get_body(("html",)).get_content()
    assert "Hi User0," in html
    assert f"https://mail.example.com/delivery/u/{verp.message_token(message.pk, 'unsubscribe')}/" in html


def test_planning_is_idempotent_and_variants_share_the_group(make_audience, compiled, sending_identity):
    from contacts.selectors import audience_sql

    mailing_list, _ = make_audience(10)
    audience = audience_sql(list_ids=[mailing_list.pk])
    variant_a = mailings.mailing_create(
        name="A", compiled=compiled, from_email="news@example.com", send_group="campaign:1"
    )
    variant_b = mailings.mailing_create(
        name="B", compiled=compiled, from_email="news@example.com", send_group="campaign:1"
    )
    assert mailings.mailing_plan(variant_a.pk, audience=audience) == 10
    assert mailings.mailing_plan(variant_a.pk, audience=audience) == 0
    # Nobody gets two variants of one campaign.
    assert mailings.mailing_plan(variant_b.pk, audience=audience) == 0
    assert Message.objects.filter(send_group="campaign:1").count() == 10


def test_refused_recipients_fail_with_the_reply_and_a_bounce(make_relay, make_audience, start_mailing):
    from delivery.bounces.models import BounceEvent

    handler = RecordingHandler(
        rcpt_reply=lambda a: (
            "550 5.1.1 user unknown" if a in ("user3@example.org", "user5@example.org") else None
        )
    )
    with SmtpServer(handler) as server:
        make_relay(server)
        mailing_list, _ = make_audience(8)
        mailing = start_mailing(mailing_list)
        engine.drain(mailing.pk)
    states = _states(mailing)
    assert states["user3@example.org"] == states["user5@example.org"] == "failed"
    assert sum(1 for s in states.values() if s == "sent") == 6
    failed = Message.objects.get(mailing=mailing, email="user3@example.org")
    assert failed.smtp_code == 550 and "user unknown" in failed.smtp_reply
    # Recorded once, by the bounce path, with the one classifier's kind (on the event and the Message).
    event = MessageEvent.objects.get(message=failed)
    assert event.kind == "bounced" and event.data["stage"] == "rcpt" and event.data["code"] == 550
    assert event.data["kind"] == failed.bounce_kind == "hard"
    refused = Message.objects.filter(mailing=mailing, state="failed").values_list("pk", flat=True)
    assert sorted(BounceEvent.objects.values_list("message_id", flat=True)) == sorted(refused)
    assert len(handler.received) == 6


def test_a_relay_that_refuses_connections_is_backed_off_and_the_other_takes_over(
    make_relay, make_audience, start_mailing, sink
):
    dead = make_relay(port=free_port(), name="dead", weight=1000)
    alive = make_relay(sink, name="alive", weight=1)
    mailing_list, contacts = make_audience(30)
    mailing = start_mailing(mailing_list)
    engine.drain(mailing.pk)
    assert sorted(sink.handler.recipients()) == sorted(c.email for c in contacts)
    dead.refresh_from_db()
    assert dead.consecutive_failures >= 1 and dead.backed_off_until is not None
    assert "connection refused" in dead.last_error
    assert set(Message.objects.filter(mailing=mailing).values_list("relay_id", flat=True)) == {alive.pk}


def test_an_unreachable_relay_is_a_clear_error_on_the_relay_and_the_mailing(
    make_relay, make_audience, start_mailing
):
    port = free_port()
    relay = make_relay(port=port)
    mailing_list, _ = make_audience(3)
    mailing = start_mailing(mailing_list)
    result = engine.drain(mailing.pk)
    assert result.sent == 0
    mailing.refresh_from_db()
    relay.refresh_from_db()
    assert f"connection refused by 127.0.0.1:{port}" in mailing.last_error
    assert f"connection refused by 127.0.0.1:{port}" in relay.last_error
    # Nothing is lost: the messages wait in the queue for the relay to come back.
    assert set(_states(mailing).values()) == {"queued"}


def test_421_defers_then_delivers(make_relay, make_audience, start_mailing, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 1
    settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS = 1
    busy_until = time.monotonic() + 1.5
    handler = RecordingHandler(
        mail_reply=lambda: "421 4.7.0 try again later" if time.monotonic() < busy_until else None
    )
    with SmtpServer(handler) as server:
        make_relay(server)
        mailing_list, contacts = make_audience(12)
        mailing = start_mailing(mailing_list)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            engine.drain(mailing.pk)
            if not Message.objects.filter(mailing=mailing).exclude(state="sent").exists():
                break
            time.sleep(0.5)
            ledger.requeue_due()
    assert sorted(handler.recipients()) == sorted(c.email for c in contacts)
    deferred = MessageEvent.objects.filter(mailing=mailing, kind="deferred")
    assert deferred.exists() and all(e.data["code"] == 421 for e in deferred)
    retried = Message.objects.get(pk=deferred.first().message_id)
    assert retried.state == "sent" and retried.attempts >= 2


def test_a_message_larger_than_the_relay_allows_fails_with_that_reason(
    make_relay, make_audience, start_mailing
):
    with SmtpServer(RecordingHandler(), data_size_limit=600) as server:
        make_relay(server)
        mailing_list, _ = make_audience(1)
        mailing = start_mailing(mailing_list)
        engine.drain(mailing.pk)
    message = Message.objects.get(mailing=mailing)
    assert message.state == "failed" and "exceeds the relay's SIZE limit of 600 bytes" in message.smtp_reply


def test_unsubscribed_after_planning_gets_nothing(make_relay, make_audience, start_mailing, sink):
    from contacts.services import contact_unsubscribe

    make_relay(sink)
    mailing_list, contacts = make_audience(5)
    mailing = start_mailing(mailing_list)
    contact_unsubscribe(contacts[2].pk, list_ids=None, source="test")
    engine.drain(mailing.pk)
    assert "user2@example.org" not in sink.handler.recipients()
    assert len(sink.handler.recipients()) == 4
    assert _states(mailing)["user2@example.org"] == "skipped"


def test_pause_resume_cancel(make_relay, make_audience, start_mailing, sink):
    make_relay(sink)
    mailing_list, _ = make_audience(6)
    mailing = start_mailing(mailing_list)
    mailings.mailing_pause(mailing.pk)
    assert engine.drain(mailing.pk).sent == 0
    with pytest.raises(ValidationError, match="only a sending mailing can be paused"):
        mailings.mailing_pause(mailing.pk)
    mailings.mailing_resume(mailing.pk)
    assert engine.drain(mailing.pk).sent == 6

    other_list, _ = make_audience(4, start=100)
    cancelled = start_mailing(other_list)
    mailings.mailing_cancel(cancelled.pk)
    assert engine.drain(cancelled.pk).sent == 0
    assert set(_states(cancelled).values()) == {"skipped"}
    with pytest.raises(ValidationError):
        mailings.mailing_start(cancelled.pk)


def test_header_injection_is_refused_when_saved(compiled):
    for field, value in [("from_name", "Eve\r\nBcc: x@example.com"), ("reply_to", "a@example.com\nBcc: x")]:
        with pytest.raises(ValidationError):
            mailings.mailing_create(
                name="x", compiled=compiled, from_email="news@example.com", **{field: value}
            )
    with pytest.raises(ValidationError, match="line break"):
        mailings.mailing_create(
            name="x", compiled=compiled, from_email="news@example.com", headers={"X-Tag": "a\r\nBcc: x"}
        )
    with pytest.raises(ValidationError, match="not a valid email address"):
        mailings.mailing_create(
            name="x", compiled=compiled, from_email="news@example.com\r\nBcc: x@example.com"
        )
    assert not Mailing.objects.exists()


def test_sending_identities_gate_from_addresses_and_dkim_signs(
    make_relay, make_audience, start_mailing, sink
):
    import dkim as dkimpy

    identity = identities.identity_for("news@example.com")  # start_mailing's sending_identity
    identity = identities.identity_generate_dkim(identity, selector="s2026")
    with pytest.raises(ValidationError, match="not an allowed sender"):
        start_mailing(make_audience(1)[0], from_email="someone@other.example")
    make_relay(sink)
    mailing_list, _ = make_audience(1, start=50)
    mailing = start_mailing(mailing_list)
    assert mailing.identity_id == identity.pk
    engine.drain(mailing.pk)
    [received] = sink.handler.received

    def dnsfunc(name, timeout=5):
        assert name in (b"s2026._domainkey.example.com.", "s2026._domainkey.example.com.")
        return identity.dkim_dns_value.encode()

    assert dkimpy.verify(received.content, dnsfunc=dnsfunc)


def test_expired_leases_come_back_marked_as_recovered(make_relay, make_audience, start_mailing, sink):
    relay = make_relay(sink)
    mailing_list, _ = make_audience(5)
    mailing = start_mailing(mailing_list)
    claimed = ledger.claim(mailing.pk, relay.pk, 3)
    assert len(claimed) == 3
    # Another worker sees none of what is held.
    assert {c.id for c in ledger.claim(mailing.pk, relay.pk, 10)}.isdisjoint({c.id for c in claimed})
    Message.objects.filter(pk__in=[c.id for c in claimed]).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert ledger.recover_leases() == 3
    recovered = Message.objects.filter(recovered_at__isnull=False)
    assert sorted(recovered.values_list("pk", flat=True)) == sorted(c.id for c in claimed)
    assert set(recovered.values_list("state", flat=True)) == {"queued"}


def test_old_ledger_rows_are_pruned(make_relay, make_audience, start_mailing, sink):
    import datetime as dt

    from django.utils import timezone

    make_relay(sink)
    mailing_list, _ = make_audience(4)
    mailing = start_mailing(mailing_list)
    engine.drain(mailing.pk)
    old = Message.objects.filter(mailing=mailing)[:3]
    Message.objects.filter(pk__in=[m.pk for m in old]).update(
        created_at=timezone.now() - dt.timedelta(days=500)
    )
    assert ledger.prune(days=400) == 3
    assert Message.objects.filter(mailing=mailing).count() == 1
    assert ledger.prune(days=0) == 0


def test_fast_path_matches_the_template_renderer(compiled):
    from delivery.compose import MessageBuilder, Recipient
    from templates.compiler import compile_template
    from templates.context import recipient_context

    template = compile_template(
        subject="Hi {{ contact.first_name | default: 'friend' }} from {{ contact.city }}",
        html="<p>{{ contact.first_name }} & {{ contact.last_name | default: '<b>none</b>' }}</p>"
        "<p>{{ contact.score }} {{ contact.vip }}</p><a href='{{ unsubscribe_url }}'>u</a>",
    )
    assert not template.uses_logic
    builder = MessageBuilder(
        mailing_id=1,
        from_email="a@example.com",
        from_name="",
        reply_to="",
        list_ids=[],
        kind="marketing",
        send_group="g",
        extra_headers={},
        compiled=template.to_dict(),
    )
    cases = [
        {"first_name": "Ada <script>", "last_name": "", "city": "Zürich", "score": 3.5, "vip": True},
        {"first_name": "", "last_name": "O'Neil & co", "city": None, "score": 0, "vip": False},
        {"first_name": "Line\r\nBreak", "last_name": "x\ry", "city": "a.b", "score": None},
    ]
    for contact in cases:
        context = recipient_context(
            contact={"email": "x@example.org", **contact}, urls={"unsubscribe_url": "https://u/1?a=1&b=2"}
        )
        expected = template.render(context)
        raw = builder.build(Recipient(1, "x@example.org", context)).replace(b"\r\n..", b"\r\n.")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Subject"] == expected.subject
        text, html = (p.get_content().replace("\r\n", "\n") for p in parsed.iter_parts())
        assert html == expected.html.replace("\r\n", "\n")
        assert text == expected.text.replace("\r\n", "\n")


def test_templates_with_logic_render_per_recipient(make_relay, make_audience, start_mailing, sink):
    from templates.compiler import compile_template

    template = compile_template(
        subject="{% if contact.first_name == 'User1' %}Special{% else %}Regular{% endif %} news",
        html="<p>{% for i in (1..2) %}{{ i }}{% endfor %} {{ contact.first_name | upcase }}</p>",
    )
    assert template.uses_logic
    make_relay(sink)
    mailing_list, _ = make_audience(2)
    mailing = start_mailing(mailing_list, compiled=template)
    engine.drain(mailing.pk)
    subjects = {}
    for received in sink.handler.received:
        parsed = email.message_from_bytes(received.content, policy=email.policy.default)
        subjects[received.rcpt_tos[0]] = (parsed["Subject"], parsed.get_body(("html",)).get_content())
    assert subjects["user1@example.org"][0] == "Special news"
    assert subjects["user0@example.org"][0] == "Regular news"
    assert "12 USER0" in subjects["user0@example.org"][1]


def test_one_recipient_that_cannot_be_built_fails_alone(make_relay, make_audience, start_mailing, sink):
    from contacts.models import Contact
    from templates.compiler import compile_template

    template = compile_template(
        subject="Counting", html="<p>{% for i in (1..contact.n) %}{{ i }}{% endfor %}</p>"
    )
    make_relay(sink)
    mailing_list, contacts = make_audience(2)
    Contact.objects.filter(pk=contacts[0].pk).update(attributes={"n": 3})
    Contact.objects.filter(pk=contacts[1].pk).update(attributes={"n": 50_000_000})
    mailing = start_mailing(mailing_list, compiled=template)
    engine.drain(mailing.pk)
    states = _states(mailing)
    assert states["user0@example.org"] == "sent"
    assert states["user1@example.org"] == "failed"
    failed = Message.objects.get(mailing=mailing, email="user1@example.org")
    assert failed.smtp_reply.startswith("could not build the message")
    assert sink.handler.recipients() == ["user0@example.org"]


def test_start_without_an_audience_plans_the_mailings_lists(
    make_relay, make_audience, compiled, sink, sending_identity
):
    make_relay(sink)
    mailing_list, contacts = make_audience(3)
    make_audience(2, start=10)  # another list: not mailed
    mailing = mailings.mailing_create(
        name="Lists only", compiled=compiled, from_email="news@example.com", list_ids=[mailing_list.pk]
    )
    mailings.mailing_start(mailing.pk)
    assert Message.objects.filter(mailing=mailing).count() == 3
    engine.drain(mailing.pk)
    assert sorted(sink.handler.recipients()) == sorted(c.email for c in contacts)


def test_a_flush_tells_redis_everything_in_one_round_trip(make_relay, make_audience, start_mailing, sink):
    """Counters, the settled in-flight ids and the sent rate go out together after an outcome write:
    one Redis round trip a flush (each cost ~200-300 us of redis-py's CPU), and each still lands."""
    import redis

    from delivery import inflight, ratelimit
    from delivery.smtp import SENT, Outcome
    from mailplatform import metrics
    from mailplatform.redis_cache import redis_client

    relay = make_relay(sink)
    mailing_list, _ = make_audience(5)
    mailing = start_mailing(mailing_list, relays=[relay])
    claimed = ledger.claim(mailing.pk, relay.pk, 5)
    ids = [c.id for c in claimed]
    inflight.announce(mailing.pk, ids)
    recorder = engine.Recorder(
        mailing=mailing, relay_id=relay.pk, contact_of={c.id: c.contact_id for c in claimed}
    )
    for message_id in ids:
        recorder.add(Outcome(message_id, SENT, 250, "2.0.0 Ok", "data"))
    before = metrics.counted("relay").get(str(relay.pk), {}).get("sent", 0)

    trips = []
    pipeline_execute, execute_command = redis.client.Pipeline.execute, redis.Redis.execute_command

    def counted_pipeline(self, *args, **kwargs):
        trips.append("pipeline")
        return pipeline_execute(self, *args, **kwargs)

    def counted_command(self, *args, **kwargs):
        trips.append(args[0])
        return execute_command(self, *args, **kwargs)

    redis.client.Pipeline.execute, redis.Redis.execute_command = counted_pipeline, counted_command
    try:
        recorder.flush()
    finally:
        redis.client.Pipeline.execute, redis.Redis.execute_command = pipeline_execute, execute_command

    assert trips == ["pipeline"]
    assert set(Message.objects.filter(pk__in=ids).values_list("state", flat=True)) == {"sent"}
    assert metrics.counted("relay")[str(relay.pk)]["sent"] == before + 5
    assert inflight.take_maybe_sent(mailing.pk, ids) == set()  # settled: none named as maybe sent
    now = int(time.time())
    counts = redis_client().mget([ratelimit._sent_key(mailing.pk, second) for second in (now - 1, now)])
    assert sum(int(c or 0) for c in counts) == 5  # this second's sent count (ratelimit.recent_rate)
