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
from mailplatform.sqlarrays import int_array

log = logging.getLogger(__name__)


def message_key(run_id: int, step_id: int) -> str:
    """The ledger's idempotency key of a run's send at a step: one Message per run and step."""
    return f"automation:{run_id}:{step_id}"


def run_and_step_of(key: str) -> tuple[int, int] | None:
    """The run and send step a ledger key names (message_key's inverse); None for others' keys."""
    prefix, _, rest = key.partition(":")
    run, _, step = rest.partition(":")
    if prefix != "automation" or not run.isdigit() or not step.isdigit():
        return None
    return int(run), int(step)


@dataclass(slots=True)
class Due:
    """A claimed run where it is now: it moves through the batch's rounds (see advance_batch)."""

    id: int
    automation_id: int
    contact_id: int
    step_id: int | None
    step_entered_at: dt.datetime
    wait_until: dt.datetime | None
    last_send_step_id: int | None
    moved: bool = False  # it left the step it was claimed at
    sent_step_id: int | None = None  # the last send step it passed in this batch


@dataclass(slots=True)
class Outcome:
    """What a run does at its step: `moved` to `step_id` (None: finished), or stays (`next_at` only changes)."""

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


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _at(microseconds: int | None) -> dt.datetime | None:
    return None if microseconds is None else _EPOCH + dt.timedelta(microseconds=microseconds)


def _claim(now: dt.datetime, size: int) -> list[Due]:
    # The columns come from the locking SELECT itself: a row another scheduler moved on and committed
    # while this statement waited is re-read at its new version (PostgreSQL re-checks the locked
    # row), never processed again at the step it has left, as a join back to the table would.
    # Times come as integer microseconds: loading timestamps cost more than the rest of the claim.
    # Ordered by next_at alone, the due index's order: with a tie-breaker PostgreSQL sorted every due
    # run for each batch (all of them due at once: a scan and sort of the lot per batch).
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.id, r.automation_id, r.contact_id, r.step_id,
                (extract(epoch FROM r.step_entered_at) * 1000000)::bigint,
                (extract(epoch FROM r.wait_until) * 1000000)::bigint, r.last_send_step_id
            FROM automations_run r
            WHERE r.status = 'active' AND r.next_at <= %s
              AND r.automation_id IN (SELECT a.id FROM automations_automation a WHERE a.status = 'active')
            ORDER BY r.next_at
            LIMIT %s
            FOR UPDATE OF r SKIP LOCKED
            """,
            [now, size],
        )
        rows = sorted(cursor.fetchall())
    return [Due(i, a, c, s, _at(entered), _at(until), last) for i, a, c, s, entered, until, last in rows]  # type: ignore[arg-type]


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
        # Per step, what its runs need fetched (looked up once here, not once per run).
        self.kind: dict[int | None, str | None] = {pk: step.kind for pk, step in self.steps.items()}
        self.condition: dict[int | None, str] = {
            pk: str((step.config or {}).get("condition", "opened"))
            for pk, step in self.steps.items()
            if step.kind == StepKind.BRANCH
        }
        self.needs_contact: set[int | None] = {
            pk
            for pk, step in self.steps.items()
            if step.kind in (StepKind.WAIT, StepKind.BRANCH)
            and (step.config or {}).get("mode", "") in ("weekday", "date_field")
            or self.condition.get(pk) == "field"
        }

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


# Steps after which a run goes on to its next step in the same batch. After one that changes the
# contact (a field, a list) or calls out, it stops and is due again at once: the next batch checks its
# exits (it may have just left the automation's list) before anything else happens to it.
_GOES_ON_AFTER = frozenset({StepKind.SEND, StepKind.WAIT, StepKind.BRANCH, StepKind.SPLIT})
# A flow only leads forward, so a run passes each step at most once; this bounds a batch all the same.
_MAX_ROUNDS = 50


def advance_batch(now: dt.datetime, size: int) -> dict[str, int]:
    """Claim up to `size` due runs and move each as far as it can go now, set-wise, in one transaction.

    The runs go step after step in rounds (all of the batch's runs at once in each round) until each
    must wait (a wait step, a branch's deadline), ends, or has passed a step that changes the contact:
    a send followed by a wait costs one claim and one write-back, not two. Each move is a transition
    (a history row)."""
    from contacts.selectors import contacts_not_subscribed, segment_members, unsendable_contact_ids

    counts: Counter[str] = Counter()
    with transaction.atomic():
        runs = _claim(now, size)
        counts["claimed"] = len(runs)
        if not runs:
            return dict(counts)
        flow = Flow({r.automation_id for r in runs})
        final: dict[int, Outcome] = {}  # where each run is left: staying, or ended
        history: list[tuple[int, int | None, str, str]] = []  # (run, step left, kind, detail)
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
        exited: list[Outcome] = []
        for run in runs:
            if run.contact_id in gone:
                exited.append(_end(run, RunStatus.EXITED, "contact unsubscribed, bounced or complained"))
            elif (run.automation_id, run.contact_id) in left:
                exited.append(_end(run, RunStatus.EXITED, "left the automation's list"))
            elif (run.automation_id, -run.contact_id) in left:
                exited.append(_end(run, RunStatus.EXITED, "entered the exit segment"))
            else:
                live.append(run)
        for outcome in exited:
            history.append((outcome.run.id, outcome.run.step_id, outcome.event, outcome.reason[:300]))
            final[outcome.run.id] = outcome

        for _ in range(_MAX_ROUNDS):
            if not live:
                break
            live = _round(flow, live, now, final, history, counts)
        for run in live:  # still going after the last round: due again at once
            final[run.id] = Outcome(run, False, run.step_id, next_at=now)
        _write(final, history, now)
        _cancel_ended(flow, exited)
        counts["transitions"] = len(history)
        for outcome in final.values():
            if outcome.status != RunStatus.ACTIVE:
                counts[str(outcome.status)] += 1
            elif outcome.next_at is not None and outcome.next_at > now:
                counts["waiting"] += 1
    return dict(counts)


def _round(
    flow: Flow,
    live: list[Due],
    now: dt.datetime,
    final: dict[int, Outcome],
    history: list[tuple[int, int | None, str, str]],
    counts: Counter[str],
) -> list[Due]:
    """Each run takes the step it is at; returns the runs that moved on and may go further now.
    Runs that stay or end are put in `final`, each move in `history`."""
    # What the steps need to know, fetched set-wise.
    need_data = {r.contact_id for r in live if r.step_id in flow.needs_contact}
    contacts = _contact_data(need_data)
    engaged = _engagement(flow, live)
    segment_hits = _segment_hits(flow, live)
    event_hits = _event_hits(flow, live)

    retry_held = now + dt.timedelta(seconds=settings.AUTOMATIONS_HELD_RETRY_SECONDS)
    decided: list[Outcome] = []
    sends: dict[int, list[Due]] = defaultdict(list)
    field_updates: dict[int, list[int]] = defaultdict(list)
    list_changes: dict[int, list[int]] = defaultdict(list)
    webhooks: list[tuple[int, int]] = []
    for run in live:
        step = flow.steps.get(run.step_id) if run.step_id is not None else None
        if step is None:
            decided.append(_end(run, RunStatus.DONE, "reached the end"))
            continue
        config = step.config or {}
        nxt = flow.next_of.get(step.id)
        if step.kind == StepKind.SEND:
            sends[step.id].append(run)
            decided.append(Outcome(run, True, nxt, event="sent"))
        elif step.kind == StepKind.WAIT:
            target = run.wait_until or wait_target(step, run, contacts.get(run.contact_id))
            if target <= now:
                decided.append(Outcome(run, True, nxt, event="waited"))
            else:
                decided.append(Outcome(run, False, run.step_id, next_at=target, wait_until=target))
        elif step.kind == StepKind.BRANCH:
            condition = config.get("condition", "opened")
            if condition in ("opened", "clicked"):
                deadline = run.step_entered_at + dt.timedelta(seconds=int(config.get("deadline_seconds", 0)))
                if run.id in engaged:
                    decided.append(Outcome(run, True, nxt, event=f"branch: {condition}"))
                elif deadline <= now:
                    decided.append(Outcome(run, True, flow.otherwise(step), event=f"branch: not {condition}"))
                else:  # an open or click wakes it before (runs_wake_engaged); else the deadline
                    decided.append(Outcome(run, False, run.step_id, next_at=deadline))
                continue
            if condition == "field":
                holds = _field_holds(config, contacts.get(run.contact_id))
            elif condition == "segment":
                holds = run.id in segment_hits
            else:
                holds = run.id in event_hits
            target_step = nxt if holds else flow.otherwise(step)
            decided.append(Outcome(run, True, target_step, event=f"branch: {'yes' if holds else 'no'}"))
        elif step.kind == StepKind.SPLIT:
            first = _split_share(run.id, step.id) < int(config.get("percent", 50))
            target_step = nxt if first else flow.otherwise(step)
            decided.append(Outcome(run, True, target_step, event=f"split: {'A' if first else 'B'}"))
        elif step.kind == StepKind.UPDATE_FIELD:
            field_updates[step.id].append(run.contact_id)
            decided.append(Outcome(run, True, nxt, event="field updated"))
        elif step.kind in (StepKind.ADD_LIST, StepKind.REMOVE_LIST):
            list_changes[step.id].append(run.contact_id)
            decided.append(Outcome(run, True, nxt, event=step.get_kind_display().lower()))
        elif step.kind == StepKind.WEBHOOK:
            webhooks.append((run.id, step.id))
            decided.append(Outcome(run, True, nxt, event="webhook called"))
        else:  # end
            decided.append(_end(run, RunStatus.DONE, "reached an end step"))

    held: set[int] = set()
    for step_id, group in sends.items():
        try:
            with transaction.atomic():
                counts["sent"] += _queue_sends(flow, flow.steps[step_id], group)
        except PlatformError as exc:
            # The step cannot send now (its template's from address is no longer allowed, say):
            # its runs stay where they are and look again later; the automation shows why.
            _hold(group, f"step {flow.steps[step_id].position}: {exc}")
            held |= {run.id for run in group}
    _apply_contact_steps(flow, field_updates, list_changes)
    if webhooks:
        transaction.on_commit(lambda: _enqueue_webhooks(webhooks))

    going: list[Due] = []
    for outcome in decided:
        run = outcome.run
        if run.id in held:
            final[run.id] = Outcome(run, False, run.step_id, next_at=retry_held)
            continue
        if not outcome.moved:
            final[run.id] = outcome
            continue
        step = flow.steps.get(run.step_id) if run.step_id is not None else None
        history.append((run.id, run.step_id, outcome.event or str(outcome.status), outcome.reason[:300]))
        if step is not None and step.kind == StepKind.SEND:
            run.sent_step_id = run.last_send_step_id = step.id
        if outcome.status != RunStatus.ACTIVE:
            final[run.id] = outcome
        elif outcome.step_id is None:  # moved past the last step
            final[run.id] = Outcome(run, True, None, status=RunStatus.DONE, reason="reached the end")
        else:
            run.step_id, run.step_entered_at, run.wait_until, run.moved = outcome.step_id, now, None, True
            if step is not None and step.kind in _GOES_ON_AFTER:
                going.append(run)
            else:
                final[run.id] = Outcome(run, False, run.step_id, next_at=now)
    return going


def _hold(group: list[Due], error: str) -> None:
    automation_id = group[0].automation_id
    Automation.objects.filter(pk=automation_id).update(last_error=error[:2000])
    log.warning("automation %s: %s", automation_id, error)


def _end(run: Due, status: str, reason: str) -> Outcome:
    return Outcome(run, True, None, status=status, reason=reason, event=str(status))


def _engagement(flow: Flow, runs: list[Due]) -> set[int]:
    """Runs at an opened/clicked branch whose previous message a person opened (clicked)."""
    from delivery.selectors import keys_engaged

    wanted: dict[bool, dict[str, int]] = {True: {}, False: {}}
    for run in runs:
        if run.last_send_step_id is None:
            continue
        condition = flow.condition.get(run.step_id)
        if condition in ("opened", "clicked"):
            wanted[condition == "clicked"][message_key(run.id, run.last_send_step_id)] = run.id
    hits: set[int] = set()
    for clicked, keys in wanted.items():
        if keys:
            hits |= {keys[k] for k in keys_engaged(list(keys), clicked=clicked)}
    return hits


def _segment_hits(flow: Flow, runs: list[Due]) -> set[int]:
    from contacts.selectors import segment_members

    by_segment: dict[int, list[Due]] = defaultdict(list)
    for run in runs:
        if flow.condition.get(run.step_id) == "segment":
            config = flow.steps[run.step_id].config or {}
            by_segment[int(config.get("segment_id") or 0)].append(run)
    hits: set[int] = set()
    for segment_id, group in by_segment.items():
        inside = segment_members(segment_id, {r.contact_id for r in group}) if segment_id else set()
        hits |= {r.id for r in group if r.contact_id in inside}
    return hits


def _event_hits(flow: Flow, runs: list[Due]) -> set[int]:
    """Runs at an event branch whose contact had that event since the run entered."""
    asked = [
        (run.id, run.contact_id, str(flow.steps[run.step_id].config.get("event", "")))
        for run in runs
        if flow.condition.get(run.step_id) == "event"
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
        FROM automations_run r WHERE r.id = ANY(%s::bigint[])
        """,
        [str(step.pk), int_array([r.id for r in runs])],
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


def _write(
    final: dict[int, Outcome], history: list[tuple[int, int | None, str, str]], now: dt.datetime
) -> None:
    """The runs' new places and the moves' history, set-wise: one UPDATE, one INSERT.

    A batch's runs end up in few distinct places (a step, a wait's end, a status), so each distinct
    place is sent once and each run as two integers (its id, the number of its place); the same for
    the history rows, both as one array literal (mailplatform.sqlarrays): arrays of times and texts
    per run cost far more to send than the SQL costs."""
    places: dict[tuple[Any, ...], int] = {}
    ids: list[int] = []
    refs: list[int] = []
    for run_id, o in final.items():
        run = o.run
        if o.status == RunStatus.ACTIVE:
            place = (run.moved, str(o.status), o.step_id, o.next_at, o.wait_until, "", run.sent_step_id)
        else:
            place = (run.moved, str(o.status), None, None, None, o.reason[:200], run.sent_step_id)
        ids.append(run_id)
        refs.append(places.setdefault(place, len(places) + 1))
    kinds: dict[tuple[int | None, str, str], int] = {}
    event_runs: list[int] = []
    event_refs: list[int] = []
    for run_id, step_id, kind, detail in history:
        event_runs.append(run_id)
        event_refs.append(kinds.setdefault((step_id, kind, detail), len(kinds) + 1))
    with connection.cursor() as cursor:
        if ids:
            # A run that moved and stops (next_at = now) is due again at once: the next batch takes it on.
            columns = [list(column) for column in zip(*places, strict=True)]
            cursor.execute(
                """
                UPDATE automations_run AS r SET status = p.status, step_id = p.step_id,
                    next_at = p.next_at, wait_until = p.wait_until,
                    step_entered_at = CASE WHEN p.moved THEN %s ELSE r.step_entered_at END,
                    finished_at = CASE WHEN p.status = 'active' THEN r.finished_at ELSE %s END,
                    exit_reason = CASE WHEN p.status = 'active' THEN r.exit_reason ELSE p.reason END,
                    last_send_step_id = coalesce(p.sent_step, r.last_send_step_id),
                    last_sent_at = CASE WHEN p.sent_step IS NULL THEN r.last_sent_at ELSE %s END
                FROM unnest(%s::bigint[], %s::int[]) AS v(id, place)
                JOIN unnest(%s::bool[], %s::text[], %s::bigint[], %s::timestamptz[], %s::timestamptz[],
                            %s::text[], %s::bigint[])
                    WITH ORDINALITY AS p(moved, status, step_id, next_at, wait_until, reason, sent_step, n)
                    ON p.n = v.place
                WHERE r.id = v.id
                """,
                [now, now, now, int_array(ids), int_array(refs), *columns],
            )
        if event_runs:
            columns = [list(column) for column in zip(*kinds, strict=True)]
            # In the order the moves were made: a run's history reads in its id order.
            cursor.execute(
                """
                INSERT INTO automations_runevent (run_id, step_id, kind, at, detail)
                SELECT v.run_id, k.step_id, k.kind, %s, k.detail
                FROM unnest(%s::bigint[], %s::int[]) WITH ORDINALITY AS v(run_id, kind, n)
                JOIN unnest(%s::bigint[], %s::text[], %s::text[]) WITH ORDINALITY AS k(step_id, kind, detail, n)
                    ON k.n = v.kind
                ORDER BY v.n
                """,
                [now, int_array(event_runs), int_array(event_refs), *columns],
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
