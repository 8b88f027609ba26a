"""The scheduler: runs advance step by step, set-wise; one ledger row per run and step; waits,
branches, pause, exits and edits behave."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automations import scheduler, services
from automations.models import Run, RunStatus, Step
from delivery.models import Message, MessageEvent
from tests.automations.conftest import later

pytestmark = pytest.mark.django_db


def _messages(automation):
    from automations.selectors import mailing_ids_of

    return Message.objects.filter(mailing_id__in=mailing_ids_of(automation.pk)).order_by("id")


def test_a_series_sends_waits_and_sends_again_one_row_per_run_and_step(series, make_contacts):
    automation = series()
    contacts = make_contacts(3)
    assert services.enrol(automation.pk, [c.pk for c in contacts]) == 3
    scheduler.tick()
    first = list(_messages(automation))
    assert len(first) == 3
    assert {m.state for m in first} == {"queued"}
    runs = list(Run.objects.filter(automation=automation))
    assert {r.step.kind for r in runs} == {"wait"}
    assert {m.idempotency_key for m in first} == {
        scheduler.message_key(r.id, Step.objects.get(automation=automation, position=1).pk) for r in runs
    }
    # Ticking again (a retry, a second scheduler) queues nothing new: they wait for a day.
    scheduler.tick()
    scheduler.tick(now=later(hours=23))
    assert _messages(automation).count() == 3
    # A person opens one contact's first mail; a proxy "opens" another's (not human).
    opened, proxied = first[0], first[1]
    MessageEvent.objects.create(
        message=opened, mailing_id=opened.mailing_id, kind="opened", at=later(), data={}
    )
    MessageEvent.objects.create(
        message=proxied,
        mailing_id=proxied.mailing_id,
        kind="opened",
        at=later(),
        data={"machine": "apple-mpp"},
    )
    scheduler.tick(now=later(days=1, minutes=1))
    second = list(
        _messages(automation)
        .filter(mailing__meta__step_id__isnull=False)
        .exclude(pk__in=[m.pk for m in first])
    )
    assert [m.contact_id for m in second] == [opened.contact_id]
    # The others wait at the branch until its deadline, then take the other way: the end.
    assert Run.objects.filter(automation=automation, status="active").count() == 2
    scheduler.tick(now=later(days=3, minutes=5))
    assert Run.objects.filter(automation=automation, status="active").count() == 0
    assert set(Run.objects.filter(automation=automation).values_list("status", flat=True)) == {"done"}
    total, keys = __import__("automations.selectors").selectors.ledger_rows_per_run_and_step(automation.pk)
    assert total == keys == 4


def test_a_batch_enqueues_every_send_in_one_statement(series, make_contacts):
    automation = series()
    contacts = make_contacts(300)
    services.enrol(automation.pk, [c.pk for c in contacts])
    with CaptureQueriesContext(connection) as queries:
        result = scheduler.advance_batch(later(), 1000)
    inserts = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().startswith("INSERT INTO delivery_message")
    ]
    assert len(inserts) == 1
    assert result["sent"] == 300 and result["transitions"] == 300
    assert _messages(automation).count() == 300


def test_pausing_holds_runs_where_they_are(series, make_contacts):
    automation = series()
    contacts = make_contacts(2)
    services.enrol(automation.pk, [c.pk for c in contacts])
    services.automation_set_status(automation.pk, "paused")
    assert scheduler.tick(now=later(days=5)).get("claimed", 0) == 0
    assert _messages(automation).count() == 0
    assert {r.step.position for r in Run.objects.filter(automation=automation)} == {1}
    services.automation_set_status(automation.pk, "active")
    scheduler.tick()
    assert _messages(automation).count() == 2


def test_unsubscribing_ends_runs_and_cancels_their_queued_mail(series, make_contacts, mailing_list):
    from contacts.services import contact_unsubscribe

    automation = series(trigger="list_joined", trigger_list_id=mailing_list.pk)
    stays, leaves = make_contacts(2, mailing_list)
    services.enrol(automation.pk, [stays.pk, leaves.pk])
    scheduler.tick()
    assert _messages(automation).filter(state="queued").count() == 2
    contact_unsubscribe(leaves.pk, list_ids=[mailing_list.pk], source="test")
    scheduler.tick(now=later(days=1, minutes=1))
    run = Run.objects.get(automation=automation, contact=leaves)
    assert run.status == RunStatus.EXITED and "list" in run.exit_reason
    assert _messages(automation).get(contact=leaves).state == "skipped"
    assert _messages(automation).get(contact=stays).state == "queued"
    assert Run.objects.get(automation=automation, contact=stays).status == "active"


def test_a_bounced_contact_leaves_every_automation(series, make_contacts):
    from contacts.services import contacts_mark_bounced

    one, two = series(), series()
    (contact,) = make_contacts(1)
    services.enrol(one.pk, [contact.pk])
    services.enrol(two.pk, [contact.pk])
    scheduler.tick()
    contacts_mark_bounced({contact.pk: 1})
    scheduler.tick(now=later(days=1, minutes=1))
    assert set(Run.objects.filter(contact=contact).values_list("status", flat=True)) == {"exited"}


def test_the_entry_policy_is_kept(series, make_contacts):
    automation = series()
    (contact,) = make_contacts(1)
    assert services.enrol(automation.pk, [contact.pk]) == 1
    assert services.enrol(automation.pk, [contact.pk]) == 0
    services.automation_update(automation.pk, entry_policy="every_time")
    assert services.enrol(automation.pk, [contact.pk]) == 1
    services.automation_update(automation.pk, entry_policy="periodic", entry_days=30)
    assert services.enrol(automation.pk, [contact.pk]) == 0


def test_removing_a_step_moves_its_runs_to_the_next_and_is_audited(series, make_contacts):
    from mailplatform.models import AuditEntry

    automation = series()
    contacts = make_contacts(2)
    services.enrol(automation.pk, [c.pk for c in contacts])
    scheduler.tick()  # sent, now waiting a day
    wait = Step.objects.get(automation=automation, kind="wait")
    assert services.step_delete(wait.pk) == 2
    assert {r.step.kind for r in Run.objects.filter(automation=automation)} == {"branch"}
    assert AuditEntry.objects.filter(action="automation.step_removed").exists()
    assert list(Step.objects.filter(automation=automation).values_list("position", flat=True)) == [1, 2, 3, 4]


def test_a_branch_may_only_lead_forward(series):
    automation = series()
    first = Step.objects.get(automation=automation, position=1)
    branch = Step.objects.get(automation=automation, kind="branch")
    from mailplatform.errors import Invalid

    with pytest.raises(Invalid):
        services.step_update(branch.pk, config={**branch.config, "otherwise": first.key})


def test_wait_until_a_weekday_at_local_time(make_template):
    import datetime as dt
    import zoneinfo

    from automations.models import Step
    from automations.scheduler import Due, wait_target

    step = Step(kind="wait", config={"mode": "weekday", "weekday": 0, "time": "09:30"})
    # A Wednesday evening in Tokyo: the next Monday 09:30 Tokyo time.
    start = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
    run = Due(1, 1, 1, 1, start, None, None)
    target = wait_target(step, run, {"timezone": "Asia/Tokyo"})
    local = target.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 30)
    assert dt.timedelta(0) < target - start < dt.timedelta(days=7)


def test_field_update_and_list_steps(make_contacts, mailing_list):
    from automations.services import automation_create, automation_set_status, enrol, step_add
    from contacts.models import Contact, CustomField, Subscription

    CustomField.objects.create(name="stage", label="Stage", type="text")
    automation = automation_create(name="Tagging", trigger="manual")
    step_add(automation.pk, kind="update_field", config={"field": "stage", "value": "onboarded"})
    step_add(automation.pk, kind="add_list", config={"list_id": mailing_list.pk})
    automation_set_status(automation.pk, "active")
    (contact,) = make_contacts(1)
    enrol(automation.pk, [contact.pk])
    scheduler.tick()
    contact = Contact.objects.get(pk=contact.pk)
    assert contact.attributes["stage"] == "onboarded"
    assert Subscription.objects.get(contact=contact, mailing_list=mailing_list).status == "confirmed"
    assert Run.objects.get(automation=automation).status == "done"


def test_a_tick_goes_on_past_a_full_batch_of_runs_that_stay(series, make_contacts):
    automation = series()
    contacts = make_contacts(10)
    services.enrol(automation.pk, [c.pk for c in contacts])
    scheduler.tick(batch=3)
    moment = later(days=1, minutes=1)
    scheduler.tick(now=moment, batch=3)
    runs = Run.objects.filter(automation=automation)
    assert {r.step.kind for r in runs} == {"branch"}
    assert not runs.filter(next_at__lte=moment).exists()  # every one was looked at in that tick


def test_one_batch_moves_a_run_on_until_it_must_wait_and_stops_after_changing_its_contact(
    make_template, make_contacts
):
    import datetime as dt

    from automations.models import RunEvent
    from automations.selectors import ledger_rows_per_run_and_step
    from automations.services import automation_create, automation_set_status, enrol, step_add
    from contacts.models import CustomField

    CustomField.objects.create(name="stage", label="Stage", type="text")
    automation = automation_create(name="Chain", trigger="manual")
    step_add(automation.pk, kind="send", template_id=make_template("A").pk)
    step_add(automation.pk, kind="send", template_id=make_template("B").pk)
    step_add(automation.pk, kind="update_field", config={"field": "stage", "value": "two mails"})
    step_add(automation.pk, kind="wait", config={"mode": "duration", "seconds": 3600})
    step_add(automation.pk, kind="end")
    automation_set_status(automation.pk, "active")
    contacts = make_contacts(3)
    enrol(automation.pk, [c.pk for c in contacts])
    moment = later()

    # Send, send, update the field: three moves in one batch; then it stops, due again at once.
    result = scheduler.advance_batch(moment, 100)
    assert (result["claimed"], result["transitions"], result["sent"]) == (3, 9, 6)
    assert _messages(automation).count() == 6
    runs = list(Run.objects.filter(automation=automation))
    assert {r.step.kind for r in runs} == {"wait"} and {r.next_at for r in runs} == {moment}
    assert {r.last_send_step_id for r in runs} == {Step.objects.get(automation=automation, position=2).pk}
    history = list(RunEvent.objects.filter(run=runs[0]).exclude(kind="entered").order_by("id"))
    assert [(e.kind, Step.objects.get(pk=e.step_id).position) for e in history] == [
        ("sent", 1),
        ("sent", 2),
        ("field updated", 3),
    ]
    # The next batch checks its exits, then it waits an hour from now.
    result = scheduler.advance_batch(moment, 100)
    assert (result["claimed"], result["transitions"], result["waiting"]) == (3, 0, 3)
    assert {r.wait_until for r in Run.objects.filter(automation=automation)} == {
        moment + dt.timedelta(hours=1)
    }
    # One ledger row per run and send step.
    assert ledger_rows_per_run_and_step(automation.pk) == (6, 6)


HUMAN = {
    "ua": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"
}
PROXY = {"ua": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"}


@pytest.mark.parametrize("condition", ["opened", "clicked"])
def test_an_open_or_click_wakes_the_run_at_its_branch_at_once(condition, make_template, make_contacts):
    """Tracking's flush wakes the run waiting on that very message: the yes way is taken on the next
    tick, not at the deadline; a proxy's open wakes nobody, nor does an open at a "clicked" branch."""
    from delivery import tracking

    automation = services.automation_create(name="Nudge", trigger="manual")
    services.step_add(automation.pk, kind="send", template_id=make_template("First", "First").pk)
    branch = services.step_add(
        automation.pk, kind="branch", config={"condition": condition, "deadline_seconds": 7 * 86400}
    )
    services.step_add(automation.pk, kind="send", template_id=make_template("Second", "Second").pk)
    end = services.step_add(automation.pk, kind="end")
    services.step_update(branch.pk, config={**branch.config, "otherwise": end.key})
    services.automation_set_status(automation.pk, "active")
    contacts = make_contacts(3)
    services.enrol(automation.pk, [c.pk for c in contacts])
    scheduler.tick()
    human, proxied, opened_only = list(_messages(automation))
    assert Run.objects.filter(automation=automation, step=branch, next_at__gt=later(days=6)).count() == 3

    tracking.buffer_event(condition, human.mailing_id, human.pk, HUMAN)
    tracking.buffer_event("opened", proxied.mailing_id, proxied.pk, PROXY)
    if condition == "clicked":
        tracking.buffer_event("opened", opened_only.mailing_id, opened_only.pk, HUMAN)
    tracking.tracking_flush()
    scheduler.tick()  # now, not a week on

    seconds = _messages(automation).exclude(pk__in=[human.pk, proxied.pk, opened_only.pk])
    assert [m.contact_id for m in seconds] == [human.contact_id]
    assert Run.objects.filter(automation=automation, step=branch).count() == 2  # still waiting
