"""The scheduler: claims due runs in batches (FOR UPDATE SKIP LOCKED) and advances them set-wise.

One batch is one transaction: the claim, the sends queued in delivery's ledger (one INSERT ...
SELECT per send step for all its runs, through delivery.mailings.mailing_queue_keyed), the runs'
moves (one UPDATE ... FROM unnest(...)) and their history (one INSERT). A scheduler killed in the
middle rolls the whole batch back; its successor redoes it, and every send's idempotency key
(`automation:<run>:<step>`, unique in the ledger) makes the ledger hold one row per run and step
whatever happens. Paused automations' runs are not claimed: they stay where they are.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from automations.models import Automation, RunStatus, Step, StepKind, StepMailing
from mailplatform.errors import PlatformError

log = logging.getLogger(__name__)


def message_key(run_id: int, step_id: int) -> str:
    """The ledger's idempotency key of a run's send at a step: one Message per run and step."""
    return f"automation:{run_id}:{step_id}"


@dataclass(slots=True)
class Due:
    id: int
    automation_id: int
    contact_id: int
    step_id: int | None
    step_entered_at: dt.datetime
    wait_until: dt.datetime | None
    last_send_step_id: int | None


@dataclass(slots=True)
class Outcome:
    """Where a run goes: `moved` to `step_id` (None: finished), or stays (`next_at` only changes)."""

    run: Due
    moved: bool
    step_id: int | None = None
    next_at: dt.datetime | None = None
    wait_until: dt.datetime | None = None
    status: str = RunStatus.ACTIVE
    reason: str = ""
    event: str = ""


def tick(
    now: dt.datetime | None = None,
    *,
    batch: int | None = None,
    max_seconds: float | None = None,
    after_batch: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Advance every due run (in batches) until none is due or the time is up; counts by kind.

    `now` is the scheduler's clock: tests and the benchmark pass a later time to move time on
    instead of sleeping. Without it each batch reads the clock. `after_batch` is called after each
    batch; returning False stops the tick (the task's single-flight lock was lost).
    """
    size = batch or settings.AUTOMATIONS_BATCH_SIZE
    deadline = time.monotonic() + (max_seconds or settings.AUTOMATIONS_TICK_MAX_SECONDS)
    totals: Counter[str] = Counter()
    while time.monotonic() < deadline:
        result = advance_batch(now or timezone.now(), size)
        totals.update(result)
        # Runs that moved are due again at once (their next step); a full batch may leave more due
        # behind it. A run that stays is never due again within this tick (its next_at is later).
        if not result.get("transitions") and result["claimed"] < size:
            break
        if after_batch is not None and not after_batch():
            break
    return dict(totals)


def _claim(now: dt.datetime, size: int) -> list[Due]:
    # The columns come from the locking SELECT itself: a row another scheduler moved on and committed
    # while this statement waited is re-read at its new version (PostgreSQL re-checks the locked
    # row), never processed again at the step it has left, as a join back to the table would.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.id, r.automation_id, r.contact_id, r.step_id, r.step_entered_at, r.wait_until,
                r.last_send_step_id
            FROM automations_run r
            WHERE r.status = 'active' AND r.next_at <= %s
              AND r.automation_id IN (SELECT a.id FROM automations_automation a WHERE a.status = 'active')
            ORDER BY r.next_at, r.id
            LIMIT %s
            FOR UPDATE OF r SKIP LOCKED
            """,
            [now, size],
        )
        return sorted((Due(*row) for row in cursor.fetchall()), key=lambda due: due.id)


class Flow:
    """The steps of the automations in a batch: each step's next one and a branch's other way."""

    def __init__(self, automation_ids: set[int]) -> None:
        self.automations = {a.pk: a for a in Automation.objects.filter(pk__in=automation_ids)}
        self.steps: dict[int, Step] = {}
        self.next_of: dict[int, int | None] = {}
        by_key: dict[tuple[int, str], int] = {}
        ordered: dict[int, list[Step]] = defaultdict(list)
        for step in Step.objects.filter(automation_id__in=automation_ids).order_by(
            "automation_id", "position", "id"
        ):
            self.steps[step.pk] = step
            ordered[step.automation_id].append(step)
            by_key[(step.automation_id, step.key)] = step.pk
        for steps in ordered.values():
            for index, step in enumerate(steps):
                self.next_of[step.pk] = steps[index + 1].pk if index + 1 < len(steps) else None
        self.by_key = by_key

    def otherwise(self, step: Step) -> int | None:
        key = str((step.config or {}).get("otherwise") or "")
        return self.by_key.get((step.automation_id, key)) if key else None


def _contact_data(contact_ids: set[int]) -> dict[int, dict[str, Any]]:
    from contacts.selectors import contact_merge_data

    return contact_merge_data(contact_ids) if contact_ids else {}


def _local_time(text: str) -> dt.time:
    try:
        hour, minute = (int(part) for part in str(text or "09:00").split(":")[:2])
        return dt.time(hour, minute)
    except ValueError:
        return dt.time(9, 0)


def _zone(name: str | None) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name or settings.DEFAULT_TIMEZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def wait_target(step: Step, run: Due, contact: dict[str, Any] | None) -> dt.datetime:
    """When a run that arrived at this wait step at `step_entered_at` may go on."""
    config = step.config or {}
    mode = config.get("mode", "duration")
    start = run.step_entered_at
    if mode == "weekday":
        zone = _zone((contact or {}).get("timezone"))
        local = start.astimezone(zone)
        at = _local_time(config.get("time"))
        days = (int(config.get("weekday", 0)) - local.weekday()) % 7
        target = dt.datetime.combine(local.date() + dt.timedelta(days=days), at, zone)
        if target <= local:
            target += dt.timedelta(days=7)
        return target
    if mode == "date_field":
        value = (contact or {}).get(str(config.get("field", "")))
        try:
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
        except ValueError:
            return start  # no date: nothing to wait for
        zone = _zone((contact or {}).get("timezone"))
        return dt.datetime.combine(day, _local_time(config.get("time")), zone)
    return start + dt.timedelta(seconds=max(0, int(config.get("seconds", 0))))


def _split_share(run_id: int, step_id: int) -> int:
    """A stable 0..99 per run and step: the same run always lands on the same side of a split."""
    digest = hashlib.sha256(f"{run_id}:{step_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def _field_holds(config: dict[str, Any], contact: dict[str, Any] | None) -> bool:
    value = (contact or {}).get(str(config.get("field", "")))
    op = config.get("op", "equals")
    if op == "is_set":
        return value not in (None, "")
    wanted = str(config.get("value", ""))
    same = str(value).lower() == wanted.lower() if value is not None else wanted == ""
    if isinstance(value, bool):
        same = value == (wanted.lower() in ("1", "true", "yes", "on"))
    return same if op == "equals" else not same


def advance_batch(now: dt.datetime, size: int) -> dict[str, int]:
    """Claim up to `size` due runs and advance each by one step, set-wise, in one transaction."""
    from contacts.selectors import contacts_not_subscribed, segment_members, unsendable_contact_ids

    counts: Counter[str] = Counter()
    with transaction.atomic():
        runs = _claim(now, size)
        counts["claimed"] = len(runs)
        if not runs:
            return dict(counts)
        flow = Flow({r.automation_id for r in runs})
        outcomes: list[Outcome] = []
        live: list[Due] = []

        # Exits first: unsubscribed, bounced, complained, suppressed or erased contacts; left the
        # trigger's list; entered the exit segment.
        gone = unsendable_contact_ids({r.contact_id for r in runs})
        by_automation: dict[int, list[Due]] = defaultdict(list)
        for run in runs:
            by_automation[run.automation_id].append(run)
        left: set[tuple[int, int]] = set()
        for automation_id, group in by_automation.items():
            automation = flow.automations[automation_id]
            ids = {r.contact_id for r in group}
            if automation.exit_on_unsubscribe and automation.list_ids:
                left |= {(automation_id, c) for c in contacts_not_subscribed(ids, automation.list_ids)}
            if automation.exit_segment_id:
                inside = segment_members(automation.exit_segment_id, ids)
                left |= {(automation_id, -c) for c in inside}
        for run in runs:
            if run.contact_id in gone:
                outcomes.append(_end(run, RunStatus.EXITED, "contact unsubscribed, bounced or complained"))
            elif (run.automation_id, run.contact_id) in left:
                outcomes.append(_end(run, RunStatus.EXITED, "left the automation's list"))
            elif (run.automation_id, -run.contact_id) in left:
                outcomes.append(_end(run, RunStatus.EXITED, "entered the exit segment"))
            else:
                live.append(run)

        # What the steps need to know, fetched set-wise.
        kinds = {r.id: flow.steps[r.step_id].kind if r.step_id in flow.steps else None for r in live}
        need_data = {
            r.contact_id
            for r in live
            if kinds[r.id] in (StepKind.WAIT, StepKind.BRANCH)
            and (flow.steps[r.step_id].config or {}).get("mode", "") in ("weekday", "date_field")
            or kinds[r.id] == StepKind.BRANCH
            and (flow.steps[r.step_id].config or {}).get("condition") == "field"
        }
        contacts = _contact_data(need_data)
        engaged = _engagement(flow, live, kinds)
        segment_hits = _segment_hits(flow, live, kinds)
        event_hits = _event_hits(flow, live, kinds)

        sends: dict[int, list[Due]] = defaultdict(list)
        field_updates: dict[int, list[int]] = defaultdict(list)
        list_changes: dict[int, list[int]] = defaultdict(list)
        webhooks: list[tuple[int, int]] = []
        for run in live:
            step = flow.steps.get(run.step_id) if run.step_id is not None else None
            if step is None:
                outcomes.append(_end(run, RunStatus.DONE, "reached the end"))
                continue
            config = step.config or {}
            nxt = flow.next_of.get(step.pk)
            if step.kind == StepKind.SEND:
                sends[step.pk].append(run)
                outcomes.append(Outcome(run, True, nxt, event="sent"))
            elif step.kind == StepKind.WAIT:
                target = run.wait_until or wait_target(step, run, contacts.get(run.contact_id))
                if target <= now:
                    outcomes.append(Outcome(run, True, nxt, event="waited"))
                else:
                    outcomes.append(Outcome(run, False, run.step_id, next_at=target, wait_until=target))
            elif step.kind == StepKind.BRANCH:
                condition = config.get("condition", "opened")
                if condition in ("opened", "clicked"):
                    deadline = run.step_entered_at + dt.timedelta(
                        seconds=int(config.get("deadline_seconds", 0))
                    )
                    if run.id in engaged:
                        outcomes.append(Outcome(run, True, nxt, event=f"branch: {condition}"))
                    elif deadline <= now:
                        outcomes.append(
                            Outcome(run, True, flow.otherwise(step), event=f"branch: not {condition}")
                        )
                    else:
                        check = now + dt.timedelta(seconds=settings.AUTOMATIONS_ENGAGEMENT_CHECK_SECONDS)
                        outcomes.append(Outcome(run, False, run.step_id, next_at=min(deadline, check)))
                    continue
                if condition == "field":
                    holds = _field_holds(config, contacts.get(run.contact_id))
                elif condition == "segment":
                    holds = run.id in segment_hits
                else:
                    holds = run.id in event_hits
                target = nxt if holds else flow.otherwise(step)
                outcomes.append(Outcome(run, True, target, event=f"branch: {'yes' if holds else 'no'}"))
            elif step.kind == StepKind.SPLIT:
                first = _split_share(run.id, step.pk) < int(config.get("percent", 50))
                target = nxt if first else flow.otherwise(step)
                outcomes.append(Outcome(run, True, target, event=f"split: {'A' if first else 'B'}"))
            elif step.kind == StepKind.UPDATE_FIELD:
                field_updates[step.pk].append(run.contact_id)
                outcomes.append(Outcome(run, True, nxt, event="field updated"))
            elif step.kind in (StepKind.ADD_LIST, StepKind.REMOVE_LIST):
                list_changes[step.pk].append(run.contact_id)
                outcomes.append(Outcome(run, True, nxt, event=step.get_kind_display().lower()))
            elif step.kind == StepKind.WEBHOOK:
                webhooks.append((run.id, step.pk))
                outcomes.append(Outcome(run, True, nxt, event="webhook called"))
            else:  # end
                outcomes.append(_end(run, RunStatus.DONE, "reached an end step"))

        for step_id, group in list(sends.items()):
            try:
                with transaction.atomic():
                    counts["sent"] += _queue_sends(flow, flow.steps[step_id], group)
            except PlatformError as exc:
                # The step cannot send now (its template's from address is no longer allowed, say):
                # its runs stay where they are and look again later; the automation shows why.
                _hold(outcomes, group, now, f"step {flow.steps[step_id].position}: {exc}")
                del sends[step_id]
        _apply_contact_steps(flow, field_updates, list_changes)
        _write(outcomes, sends, now)
        _cancel_ended(flow, [o for o in outcomes if o.status == RunStatus.EXITED])
        if webhooks:
            transaction.on_commit(lambda: _enqueue_webhooks(webhooks))
        for outcome in outcomes:
            counts["transitions" if outcome.moved else "waiting"] += 1
            if outcome.status != RunStatus.ACTIVE:
                counts[str(outcome.status)] += 1
    return dict(counts)


def _hold(outcomes: list[Outcome], group: list[Due], now: dt.datetime, error: str) -> None:
    held = {run.id for run in group}
    retry = now + dt.timedelta(seconds=settings.AUTOMATIONS_ENGAGEMENT_CHECK_SECONDS)
    for index, outcome in enumerate(outcomes):
        if outcome.run.id in held:
            outcomes[index] = Outcome(outcome.run, False, outcome.run.step_id, next_at=retry)
    automation_id = group[0].automation_id
    Automation.objects.filter(pk=automation_id).update(last_error=error[:2000])
    log.warning("automation %s: %s", automation_id, error)


def _end(run: Due, status: str, reason: str) -> Outcome:
    return Outcome(run, True, None, status=status, reason=reason, event=str(status))


def _engagement(flow: Flow, runs: list[Due], kinds: dict[int, Any]) -> set[int]:
    """Runs at an opened/clicked branch whose previous message a person opened (clicked)."""
    from delivery.selectors import keys_engaged

    wanted: dict[bool, dict[str, int]] = {True: {}, False: {}}
    for run in runs:
        if kinds[run.id] != StepKind.BRANCH or run.last_send_step_id is None:
            continue
        condition = (flow.steps[run.step_id].config or {}).get("condition")
        if condition in ("opened", "clicked"):
            wanted[condition == "clicked"][message_key(run.id, run.last_send_step_id)] = run.id
    hits: set[int] = set()
    for clicked, keys in wanted.items():
        if keys:
            hits |= {keys[k] for k in keys_engaged(list(keys), clicked=clicked)}
    return hits


def _segment_hits(flow: Flow, runs: list[Due], kinds: dict[int, Any]) -> set[int]:
    from contacts.selectors import segment_members

    by_segment: dict[int, list[Due]] = defaultdict(list)
    for run in runs:
        config = flow.steps[run.step_id].config if kinds[run.id] == StepKind.BRANCH else {}
        if (config or {}).get("condition") == "segment":
            by_segment[int(config.get("segment_id") or 0)].append(run)
    hits: set[int] = set()
    for segment_id, group in by_segment.items():
        inside = segment_members(segment_id, {r.contact_id for r in group}) if segment_id else set()
        hits |= {r.id for r in group if r.contact_id in inside}
    return hits


def _event_hits(flow: Flow, runs: list[Due], kinds: dict[int, Any]) -> set[int]:
    """Runs at an event branch whose contact had that event since the run entered."""
    asked = [
        (run.id, run.contact_id, str(flow.steps[run.step_id].config.get("event", "")))
        for run in runs
        if kinds[run.id] == StepKind.BRANCH
        and (flow.steps[run.step_id].config or {}).get("condition") == "event"
    ]
    if not asked:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT q.run_id FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS q(run_id, contact_id, name)
            JOIN automations_run r ON r.id = q.run_id
            WHERE EXISTS (SELECT 1 FROM automations_event e
                          WHERE e.contact_id = q.contact_id AND e.name = q.name AND e.at >= r.entered_at)
            """,
            [[a[0] for a in asked], [a[1] for a in asked], [a[2] for a in asked]],
        )
        return {row[0] for row in cursor.fetchall()}


def step_mailing_id(flow: Flow, step: Step) -> int | None:
    """The standing marketing Mailing this send step sends through, made once per template version."""
    from delivery.mailings import mailing_create
    from delivery.models import Mailing
    from templates.models import EmailTemplate
    from templates.services import template_compile

    template = EmailTemplate.objects.filter(pk=step.template_id).values("name", "current_version_id").first()
    if template is None:
        return None
    version = template["current_version_id"]
    existing = (
        StepMailing.objects.filter(step=step, template_version_id=version)
        .values_list("mailing_id", flat=True)
        .first()
    )
    if existing is not None:
        return existing
    automation = flow.automations[step.automation_id]
    mailing = mailing_create(
        name=f"Automation: {automation.name}, step {step.position} ({template['name']})",
        compiled=template_compile(step.template_id),
        from_email=automation.from_email or settings.DELIVERY_DEFAULT_FROM_EMAIL,
        from_name=automation.from_name or settings.DELIVERY_DEFAULT_FROM_NAME,
        list_ids=automation.list_ids,
        kind=Mailing.Kind.MARKETING,
        send_group=f"automation:{automation.pk}:{step.pk}",
        state=Mailing.State.STANDING,
        # template_id stays empty: the standing-Mailing constraint is transactional sends' own.
        meta={"automation_id": automation.pk, "step_id": step.pk, "template_id": step.template_id},
    )
    try:
        with transaction.atomic():
            StepMailing.objects.create(step=step, mailing_id=mailing.pk, template_version_id=version)
    except IntegrityError:  # another scheduler made it first
        return StepMailing.objects.get(step=step, template_version_id=version).mailing_id
    return mailing.pk


def _queue_sends(flow: Flow, step: Step, runs: list[Due]) -> int:
    """One INSERT ... SELECT for all the runs at this send step (keys make a retry queue nothing twice)."""
    from delivery.mailings import mailing_queue_keyed

    mailing_id = step_mailing_id(flow, step)
    if mailing_id is None:
        log.warning("automation step %s has no template: its runs go on without a send", step.pk)
        return 0
    source = (
        """
        SELECT r.contact_id, 'automation:' || r.id || ':' || %s::text,
            CASE WHEN r.data ? 'event' THEN jsonb_build_object('event', r.data->'event') ELSE '{}'::jsonb END
        FROM automations_run r WHERE r.id = ANY(%s)
        """,
        [str(step.pk), [r.id for r in runs]],
    )
    queued = mailing_queue_keyed(mailing_id, source=source)
    Automation.objects.filter(pk=step.automation_id).exclude(last_error="").update(last_error="")
    return queued


def _apply_contact_steps(flow: Flow, fields: dict[int, list[int]], lists: dict[int, list[int]]) -> None:
    from contacts.models import Contact, MailingList
    from contacts.services import contact_subscribe, contact_unsubscribe, contacts_set_attribute

    for step_id, contact_ids in fields.items():
        config = flow.steps[step_id].config or {}
        try:
            contacts_set_attribute(contact_ids, str(config.get("field", "")), config.get("value"))
        except Exception as exc:  # a value the field refuses must not stop the batch
            log.warning("automation step %s could not update a field: %s", step_id, exc)
    for step_id, contact_ids in lists.items():
        step = flow.steps[step_id]
        list_id = int((step.config or {}).get("list_id") or 0)
        mailing_list = MailingList.objects.filter(pk=list_id).first()
        if mailing_list is None:
            continue
        if step.kind == StepKind.ADD_LIST:
            for contact in Contact.objects.filter(pk__in=contact_ids):
                contact_subscribe(contact, mailing_list, confirmed=True, source="automation")
        else:
            for contact_id in contact_ids:
                contact_unsubscribe(contact_id, list_ids=[list_id], source="automation")


def _write(outcomes: list[Outcome], sends: dict[int, list[Due]], now: dt.datetime) -> None:
    """The runs' new places and the moves' history, set-wise: one UPDATE for runs that moved on (only
    integer arrays: the times are this batch's `now`), one for runs that ended, one for runs that
    stay (their next look), one INSERT of history. Arrays of times cost far more to send than ids."""
    sent_step = {run.id: step_id for step_id, group in sends.items() for run in group}
    moved_ids, moved_steps, moved_sends = [], [], []
    ended_ids, ended_status, ended_reasons = [], [], []
    stay_ids, stay_next, stay_waits = [], [], []
    history: list[tuple[int, int | None, str, str]] = []
    for o in outcomes:
        run = o.run
        if not o.moved:
            stay_ids.append(run.id)
            stay_next.append(o.next_at)
            stay_waits.append(o.wait_until)
            continue
        history.append((run.id, run.step_id, o.event or str(o.status), o.reason[:300]))
        if o.status == RunStatus.ACTIVE and o.step_id is not None:
            moved_ids.append(run.id)
            moved_steps.append(o.step_id)
            moved_sends.append(sent_step.get(run.id))
        else:
            ended_ids.append(run.id)
            finished = o.status == RunStatus.ACTIVE  # moved past the last step
            ended_status.append(str(RunStatus.DONE) if finished else str(o.status))
            ended_reasons.append("reached the end" if finished else o.reason[:200])
    with connection.cursor() as cursor:
        if moved_ids:
            # A run that moved is due again at once: the next batch takes its next step.
            cursor.execute(
                """
                UPDATE automations_run AS r SET step_id = v.step_id, next_at = %s, step_entered_at = %s,
                    wait_until = NULL,
                    last_send_step_id = coalesce(v.sent_step, r.last_send_step_id),
                    last_sent_at = CASE WHEN v.sent_step IS NULL THEN r.last_sent_at ELSE %s END
                FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS v(id, step_id, sent_step)
                WHERE r.id = v.id
                """,
                [now, now, now, moved_ids, moved_steps, moved_sends],
            )
        if ended_ids:
            cursor.execute(
                """
                UPDATE automations_run AS r SET step_id = NULL, status = v.status, next_at = NULL,
                    wait_until = NULL, finished_at = %s, exit_reason = v.reason,
                    last_send_step_id = coalesce(v.sent_step, r.last_send_step_id),
                    last_sent_at = CASE WHEN v.sent_step IS NULL THEN r.last_sent_at ELSE %s END
                FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[]) AS v(id, status, reason, sent_step)
                WHERE r.id = v.id
                """,
                [now, now, ended_ids, ended_status, ended_reasons, [sent_step.get(i) for i in ended_ids]],
            )
        if stay_ids:
            cursor.execute(
                """
                UPDATE automations_run AS r SET next_at = v.next_at, wait_until = v.wait_until
                FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS v(id, next_at, wait_until)
                WHERE r.id = v.id
                """,
                [stay_ids, stay_next, stay_waits],
            )
        if history:
            cursor.execute(
                """
                INSERT INTO automations_runevent (run_id, step_id, kind, at, detail)
                SELECT h.run_id, h.step_id, h.kind, %s, h.detail
                FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS h(run_id, step_id, kind, detail)
                """,
                [now, *[list(column) for column in zip(*history, strict=True)]],
            )


def _cancel_ended(flow: Flow, exited: list[Outcome]) -> None:
    """Runs that ended early: their queued messages are cancelled through delivery's service."""
    if not exited:
        return
    from automations.selectors import mailing_ids_of

    by_automation: dict[int, list[int]] = defaultdict(list)
    for o in exited:
        by_automation[o.run.automation_id].append(o.run.contact_id)
    from delivery.mailings import mailings_cancel_for_contacts

    for automation_id, contact_ids in by_automation.items():
        mailings_cancel_for_contacts(
            mailing_ids_of(automation_id), contact_ids, reason="automation run ended"
        )


def _enqueue_webhooks(calls: list[tuple[int, int]]) -> None:
    from automations.tasks import call_webhook

    for run_id, step_id in calls:
        call_webhook.delay(run_id, step_id)
