"""Issue #20 in-process: the claim-time re-check of list subscriptions, lease recovery naming only what
was in flight, attempts counting every submission, a mailing's error clearing, relay health per relay."""

from __future__ import annotations

import pytest

from delivery import engine, inflight, ledger, relayhealth, relays
from delivery.mailings import mailing_finish_if_done, mailing_set_error
from delivery.models import Mailing, Message, Relay
from delivery.smtp import DEFERRED, Outcome


def test_leaving_the_list_stops_queued_mail_but_another_confirmed_list_keeps_it(
    make_relay, make_audience, start_mailing, sink
):
    from contacts.models import MailingList, Subscription
    from contacts.services import contact_unsubscribe

    make_relay(sink)
    mailing_list, contacts = make_audience(4)
    other = MailingList.objects.create(name="Other")
    Subscription.objects.create(contact=contacts[1], mailing_list=other, status="confirmed")
    mailing = start_mailing(mailing_list)
    Mailing.objects.filter(pk=mailing.pk).update(list_ids=[mailing_list.pk, other.pk])
    contact_unsubscribe(contacts[0].pk, list_ids=[mailing_list.pk], source="test")
    contact_unsubscribe(contacts[1].pk, list_ids=[mailing_list.pk], source="test")
    engine.drain(mailing.pk)
    states = dict(Message.objects.filter(mailing=mailing).values_list("contact_id", "state"))
    assert states[contacts[0].pk] == "skipped"  # left the only list of the mailing it was on
    assert states[contacts[1].pk] == "sent"  # still confirmed on the mailing's other list
    assert {states[c.pk] for c in contacts[2:]} == {"sent"}
    assert sorted(sink.handler.recipients()) == sorted(c.email for c in contacts[1:])


def test_recovery_names_only_what_the_lost_runner_had_announced(
    make_relay, make_audience, start_mailing, sink
):
    relay = make_relay(sink)
    mailing_list, _ = make_audience(10)
    mailing = start_mailing(mailing_list)
    claimed = [c.id for c in ledger.claim(mailing.pk, relay.pk, 10)]
    inflight.announce(mailing.pk, claimed[:4])
    inflight.settle(mailing.pk, claimed[:1])  # its outcome was written... but the row is still here
    Message.objects.filter(pk__in=claimed).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert ledger.recover_leases(inflight.take_maybe_sent) == 10
    rows = {m.pk: m for m in Message.objects.filter(mailing=mailing)}
    named = {pk for pk, m in rows.items() if m.recovered_at is not None}
    assert named == set(claimed[1:4])
    assert {rows[pk].attempts for pk in named} == {1}  # it may have been submitted: one attempt
    assert {rows[pk].attempts for pk in set(claimed) - named} == {0}
    assert {m.state for m in rows.values()} == {"queued"}


def test_an_uncertain_submission_counts_an_attempt(make_relay, make_audience, start_mailing, sink):
    relay = make_relay(sink)
    mailing_list, _ = make_audience(2)
    mailing = start_mailing(mailing_list)
    first, second = (c.id for c in ledger.claim(mailing.pk, relay.pk, 2))
    lost = "connection lost: reset"
    returned = [
        Outcome(first, DEFERRED, 0, lost, "connection", uncertain=True),
        Outcome(second, DEFERRED, 0, lost, "connection", uncertain=False),
    ]
    from django.utils import timezone

    ledger.record_outcomes(
        mailing.pk, relay.pk, sent=[], failed=[], deferred=[], returned=returned, now=timezone.now()
    )
    one, two = Message.objects.get(pk=first), Message.objects.get(pk=second)
    assert (one.attempts, one.recovered_at is not None) == (1, True)
    assert (two.attempts, two.recovered_at is None) == (0, True)


def test_a_finished_mailing_keeps_no_error_and_a_late_one_is_not_written(
    make_relay, make_audience, start_mailing, sink
):
    make_relay(sink)
    mailing_list, _ = make_audience(2)
    mailing = start_mailing(mailing_list)
    mailing_set_error(mailing.pk, "every relay is failing, retrying later.")
    engine.drain(mailing.pk)
    mailing.refresh_from_db()
    assert mailing.state == "done" and mailing.last_error == ""
    mailing_set_error(mailing.pk, "every relay is failing, retrying later.")  # a runner late with it
    assert not mailing_finish_if_done(mailing.pk)
    mailing.refresh_from_db()
    assert mailing.last_error == ""


@pytest.fixture
def fresh_health(settings, make_relay, sink):
    settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS = 2
    relay = make_relay(sink)
    relayhealth.success(relay.pk)
    yield relay
    relayhealth.success(relay.pk)


def test_relay_failures_from_several_runners_count_once_and_success_heals(fresh_health):
    relay = fresh_health
    for _ in range(6):
        relays.relay_record_failure(relay.pk, "421 4.3.2 closing")
    row = Relay.objects.get(pk=relay.pk)
    assert row.consecutive_failures == 1 and row.backed_off_until is not None and "421" in row.last_error
    assert relays.choose_relay([row], set()) is None  # backed off for every runner
    relays.relay_record_success(relay.pk)
    row = Relay.objects.get(pk=relay.pk)
    assert row.consecutive_failures == 0 and row.backed_off_until is None
    assert relays.choose_relay([row], set()) == row
