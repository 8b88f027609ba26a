"""Writes: automations and their steps, status changes, enrolment and removal of contacts, events.

Every change a person makes is audited. Enrolment is one INSERT ... SELECT under the automation's
advisory lock, so the entry policy (once, once per N days, every time) holds when triggers race.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from automations.models import (
    Automation,
    EntryPolicy,
    Event,
    Run,
    RunEvent,
    RunStatus,
    Status,
    Step,
    StepKind,
    Trigger,
)
from mailplatform.errors import Conflict, Invalid, NotFound
from mailplatform.services import acting_user, audit_record

AUTOMATION_FIELDS = (
    "name", "description", "trigger", "trigger_list_id", "trigger_segment_id", "trigger_field", "trigger_hour",
    "trigger_event", "trigger_campaign_id", "entry_policy", "entry_days", "exit_segment_id",
    "exit_on_unsubscribe", "from_email", "from_name",
)  # fmt: skip


def _get(automation_id: int, *, lock: bool = False) -> Automation:
    query = Automation.objects.select_for_update() if lock else Automation.objects
    automation = query.filter(pk=automation_id).first()
    if automation is None:
        raise NotFound(f"automation {automation_id} does not exist")
    return automation


def _check(automation: Automation) -> None:
    from contacts.models import MailingList, Segment

    if not automation.name.strip():
        raise Invalid("an automation needs a name", field="name")
    if automation.trigger not in Trigger.values:
        raise Invalid(f"trigger must be one of {', '.join(Trigger.values)}", field="trigger")
    if automation.entry_policy not in EntryPolicy.values:
        raise Invalid(f"entry policy must be one of {', '.join(EntryPolicy.values)}", field="entry_policy")
    if automation.trigger == Trigger.LIST_JOINED and not (
        automation.trigger_list_id and MailingList.objects.filter(pk=automation.trigger_list_id).exists()
    ):
        raise Invalid("a 'joined a list' automation needs a list", field="trigger_list")
    if automation.trigger == Trigger.SEGMENT_ENTERED and not (
        automation.trigger_segment_id and Segment.objects.filter(pk=automation.trigger_segment_id).exists()
    ):
        raise Invalid("an 'entered a segment' automation needs a segment", field="trigger_segment")
    if automation.trigger == Trigger.DATE_FIELD and not automation.trigger_field:
        raise Invalid("a date-field automation needs a date field", field="trigger_field")
    if automation.trigger == Trigger.EVENT and not automation.trigger_event.strip():
        raise Invalid("an event automation needs the event's name", field="trigger_event")
    if (
        automation.trigger in (Trigger.CAMPAIGN_OPENED, Trigger.CAMPAIGN_CLICKED)
        and not automation.trigger_campaign_id
    ):
        raise Invalid("this trigger needs a campaign", field="trigger_campaign_id")
    if not 0 <= int(automation.trigger_hour) <= 23:
        raise Invalid("the hour must be 0 to 23", field="trigger_hour")
    if automation.from_email:
        from delivery.identities import check_from

        check_from(automation.from_email)


def automation_create(*, by: Any = None, **fields: Any) -> Automation:
    unknown = set(fields) - set(AUTOMATION_FIELDS) - {"recipe"}
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(sorted(unknown))}")
    automation = Automation(created_by=acting_user(by), **fields)
    if automation.trigger == Trigger.DATE_FIELD and "entry_policy" not in fields:
        automation.entry_policy, automation.entry_days = EntryPolicy.PERIODIC, 300  # once a year
    _check(automation)
    with transaction.atomic():
        automation.save()
        audit_record(by, "automation.created", automation)
    return automation


def automation_update(automation_id: int, *, by: Any = None, **fields: Any) -> Automation:
    unknown = set(fields) - set(AUTOMATION_FIELDS)
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        automation = _get(automation_id, lock=True)
        if automation.status == Status.ARCHIVED:
            raise Conflict("an archived automation cannot be changed", code="state")
        for name, value in fields.items():
            setattr(automation, name, value)
        _check(automation)
        automation.save()
        audit_record(by, "automation.updated", automation, details={"fields": sorted(fields)})
    return automation


# Which status may follow which; archiving ends every run.
TRANSITIONS = {
    Status.DRAFT: {Status.ACTIVE, Status.ARCHIVED},
    Status.ACTIVE: {Status.PAUSED, Status.ARCHIVED},
    Status.PAUSED: {Status.ACTIVE, Status.ARCHIVED},
    Status.ARCHIVED: set(),
}


def automation_set_status(automation_id: int, status: str, *, by: Any = None) -> Automation:
    """Activate, pause (runs are held where they are), resume or archive (runs end)."""
    if status not in Status.values:
        raise Invalid(f"status must be one of {', '.join(Status.values)}", field="status")
    with transaction.atomic():
        automation = _get(automation_id, lock=True)
        if status == automation.status:
            return automation
        if status not in TRANSITIONS[Status(automation.status)]:
            raise Conflict(f"a {automation.status} automation cannot become {status}", code="state")
        if status == Status.ACTIVE:
            steps = list(Step.objects.filter(automation=automation))
            if not steps:
                raise Conflict("add a step before activating the automation", code="no_steps")
            missing = [s.position for s in steps if s.kind == StepKind.SEND and s.template_id is None]
            if missing:
                raise Conflict(f"step {missing[0]} sends no template: choose one first", code="no_template")
            from delivery.identities import check_from

            try:
                check_from(automation.from_email or settings.DELIVERY_DEFAULT_FROM_EMAIL)
            except Invalid as exc:
                raise Conflict(f"set an allowed from address first: {exc}", code="from_email") from None
            automation.activated_at = automation.activated_at or timezone.now()
        before = automation.status
        automation.status = status
        automation.save(update_fields=["status", "activated_at", "updated_at"])
        if status == Status.ARCHIVED:
            _end_runs(
                Run.objects.filter(automation=automation, status=RunStatus.ACTIVE), "automation archived"
            )
        audit_record(by, f"automation.{status}", automation, details={"from": before})
        if status == Status.ACTIVE:
            transaction.on_commit(kick)
    return automation


def automation_delete(automation_id: int, *, by: Any = None) -> None:
    with transaction.atomic():
        automation = _get(automation_id, lock=True)
        if automation.status == Status.ACTIVE or Run.objects.filter(automation=automation).exists():
            raise Conflict("only a draft with no runs can be deleted; archive it instead", code="state")
        audit_record(
            by, "automation.deleted", None, details={"automation_id": automation_id, "name": automation.name}
        )
        automation.delete()


# --- steps ---

STEP_CONFIG_KEYS = {
    StepKind.SEND: set(),
    StepKind.WAIT: {"mode", "seconds", "weekday", "time", "field"},
    StepKind.BRANCH: {
        "condition",
        "deadline_seconds",
        "field",
        "op",
        "value",
        "segment_id",
        "event",
        "otherwise",
    },
    StepKind.SPLIT: {"percent", "otherwise"},
    StepKind.UPDATE_FIELD: {"field", "value"},
    StepKind.ADD_LIST: {"list_id"},
    StepKind.REMOVE_LIST: {"list_id"},
    StepKind.WEBHOOK: {"url"},
    StepKind.END: set(),
}


def _check_step(
    automation: Automation, kind: str, template_id: int | None, config: dict[str, Any], position: int
) -> dict[str, Any]:
    from templates.models import EmailTemplate

    if kind not in StepKind.values:
        raise Invalid(f"kind must be one of {', '.join(StepKind.values)}", field="kind")
    config = {
        k: v
        for k, v in (config or {}).items()
        if k in STEP_CONFIG_KEYS[StepKind(kind)] and v not in (None, "")
    }
    if (
        kind == StepKind.SEND
        and template_id is not None
        and not EmailTemplate.objects.filter(pk=template_id).exists()
    ):
        raise Invalid(f"template {template_id} does not exist", field="template")
    if kind == StepKind.WAIT:
        mode = config.setdefault("mode", "duration")
        if mode == "duration":
            try:
                config["seconds"] = int(config.get("seconds", 0))
            except (TypeError, ValueError):
                raise Invalid("the wait must be a number of seconds", field="seconds") from None
            if config["seconds"] < 0:
                raise Invalid("the wait cannot be negative", field="seconds")
        elif mode == "weekday":
            if not 0 <= int(config.get("weekday", -1)) <= 6:
                raise Invalid("weekday must be 0 (Monday) to 6 (Sunday)", field="weekday")
        elif mode != "date_field" or not config.get("field"):
            raise Invalid("wait until a date field needs the field", field="field")
    if kind == StepKind.BRANCH:
        condition = config.setdefault("condition", "opened")
        if condition not in ("opened", "clicked", "field", "segment", "event"):
            raise Invalid("the condition must be opened, clicked, field, segment or event", field="condition")
        if condition in ("opened", "clicked"):
            config["deadline_seconds"] = int(config.get("deadline_seconds", 3 * 86400))
    if kind == StepKind.SPLIT:
        config["percent"] = int(config.get("percent", 50))
        if not 0 <= config["percent"] <= 100:
            raise Invalid("the share must be 0 to 100 percent", field="percent")
    if kind in (StepKind.ADD_LIST, StepKind.REMOVE_LIST):
        from contacts.models import MailingList

        if not MailingList.objects.filter(pk=int(config.get("list_id") or 0)).exists():
            raise Invalid("choose a list", field="list_id")
    if kind == StepKind.UPDATE_FIELD and not config.get("field"):
        raise Invalid("choose the field to update", field="field")
    if kind == StepKind.WEBHOOK:
        from mailplatform.webhooks import UnsafeURL, check_url

        try:
            check_url(str(config.get("url", "")))
        except UnsafeURL as exc:
            raise Invalid(f"webhook URL: {exc}", field="url") from None
        except Exception as exc:  # does not resolve
            raise Invalid(f"webhook URL: {exc}", field="url") from None
    if kind in (StepKind.BRANCH, StepKind.SPLIT) and config.get("otherwise"):
        # Only forward: a flow always ends, and no run can loop.
        target = (
            Step.objects.filter(automation=automation, key=config["otherwise"])
            .values_list("position", flat=True)
            .first()
        )
        if target is None or target <= position:
            raise Invalid("the other way must lead to a later step", field="otherwise")
    return config


def step_add(
    automation_id: int,
    *,
    kind: str,
    template_id: int | None = None,
    config: dict[str, Any] | None = None,
    after: int | None = None,
    by: Any = None,
) -> Step:
    """Add a step at the end, or after the step at position `after` (0: first)."""
    with transaction.atomic():
        automation = _get(automation_id, lock=True)
        if automation.status == Status.ARCHIVED:
            raise Conflict("an archived automation cannot be changed", code="state")
        last = (
            Step.objects.filter(automation=automation)
            .order_by("-position")
            .values_list("position", flat=True)
            .first()
            or 0
        )
        position = last + 1 if after is None else max(0, int(after)) + 1
        clean = _check_step(automation, kind, template_id, config or {}, position)
        if position <= last:
            Step.objects.filter(automation=automation, position__gte=position).update(
                position=models_F("position") + 1
            )
        if kind == StepKind.WEBHOOK and not automation.webhook_secret_encrypted:
            _webhook_secret_ensure(automation)
        step = Step.objects.create(
            automation=automation,
            key=secrets.token_hex(4),
            position=position,
            kind=kind,
            template_id=template_id if kind == StepKind.SEND else None,
            config=clean,
        )
        audit_record(
            by,
            "automation.step_added",
            automation,
            details={"step": step.pk, "kind": kind, "position": position},
        )
    return step


def _webhook_secret_ensure(automation: Automation) -> None:
    from mailplatform.crypto import encrypt

    automation.webhook_secret_encrypted = encrypt("whsec_" + secrets.token_urlsafe(32))
    automation.save(update_fields=["webhook_secret_encrypted"])


def models_F(name: str) -> Any:
    from django.db.models import F

    return F(name)


def _step_to_change(step_id: int) -> tuple[Step, Automation]:
    """The step and its automation, both locked for the change; an archived automation's are not."""
    step = Step.objects.select_for_update().filter(pk=step_id).first()
    if step is None:
        raise NotFound(f"step {step_id} does not exist")
    automation = _get(step.automation_id, lock=True)
    if automation.status == Status.ARCHIVED:
        raise Conflict("an archived automation cannot be changed", code="state")
    return step, automation


def step_update(
    step_id: int, *, template_id: int | None = None, config: dict[str, Any] | None = None, by: Any = None
) -> Step:
    with transaction.atomic():
        step, automation = _step_to_change(step_id)
        step.config = _check_step(automation, step.kind, template_id, config or {}, step.position)
        if step.kind == StepKind.SEND:
            step.template_id = template_id
        step.save()
        # A changed wait or deadline applies to runs already there: they are looked at again now.
        Run.objects.filter(step=step, status=RunStatus.ACTIVE).update(next_at=timezone.now(), wait_until=None)
        audit_record(
            by, "automation.step_updated", automation, details={"step": step.pk, "config": step.config}
        )
    return step


def step_move(step_id: int, *, up: bool, by: Any = None) -> Step:
    """Swap a step with the one above (or below). Runs stay with their step, wherever it goes;
    a move that would make a branch's other way lead backwards is refused (no run may loop)."""
    with transaction.atomic():
        step, automation = _step_to_change(step_id)
        neighbours = Step.objects.filter(automation=automation).select_for_update()
        other = (
            neighbours.filter(position__lt=step.position).order_by("-position")
            if up
            else neighbours.filter(position__gt=step.position).order_by("position")
        ).first()
        if other is None:
            raise Conflict(f"step {step.position} is already the {'first' if up else 'last'}", code="edge")
        positions = {s.key: s.position for s in Step.objects.filter(automation=automation)}
        positions[step.key], positions[other.key] = other.position, step.position
        for branching in Step.objects.filter(automation=automation, config__has_key="otherwise"):
            target = branching.config.get("otherwise")
            if target and positions.get(target, 0) <= positions[branching.key]:
                raise Conflict(
                    f"step {branching.position}'s other way would lead backwards: change it first",
                    code="backwards",
                )
        Step.objects.filter(pk=other.pk).update(position=step.position)
        Step.objects.filter(pk=step.pk).update(position=other.position)
        audit_record(
            by,
            "automation.step_moved",
            automation,
            details={"step": step.pk, "from": step.position, "to": other.position},
        )
        step.position = other.position
    return step


def step_delete(step_id: int, *, by: Any = None) -> int:
    """Remove a step; its runs move on to the next step (or finish). Returns how many runs moved."""
    with transaction.atomic():
        step, automation = _step_to_change(step_id)
        if Step.objects.filter(automation=automation, config__otherwise=step.key).exists():
            raise Conflict("another step's branch leads here: change it first", code="referenced")
        following = (
            Step.objects.filter(automation=automation, position__gt=step.position)
            .order_by("position")
            .first()
        )
        now = timezone.now()
        runs = Run.objects.filter(step=step, status=RunStatus.ACTIVE)
        if following is not None:
            moved = runs.update(step=following, next_at=now, step_entered_at=now, wait_until=None)
        else:
            moved = runs.update(
                step=None,
                status=RunStatus.DONE,
                finished_at=now,
                next_at=None,
                exit_reason="its step was removed",
            )
        position = step.position
        step.delete()
        Step.objects.filter(automation=automation, position__gt=position).update(
            position=models_F("position") - 1
        )
        audit_record(
            by,
            "automation.step_removed",
            automation,
            details={"step": step_id, "kind": step.kind, "runs_moved": moved},
        )
    return moved


# --- enrolment ---


def _policy_sql(automation: Automation, now: dt.datetime) -> tuple[str, list[Any]]:
    if automation.entry_policy == EntryPolicy.ONCE:
        return (
            "NOT EXISTS (SELECT 1 FROM automations_run r WHERE r.automation_id = %s AND r.contact_id = s.id)",
            [automation.pk],
        )
    if automation.entry_policy == EntryPolicy.PERIODIC:
        return (
            "NOT EXISTS (SELECT 1 FROM automations_run r WHERE r.automation_id = %s AND r.contact_id = s.id "
            "AND r.entered_at > %s)",
            [automation.pk, now - dt.timedelta(days=automation.entry_days)],
        )
    return "TRUE", []


def enrol(
    automation_id: int,
    source: tuple[str, list] | Iterable[int],
    *,
    data: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    require_active: bool = True,
) -> int:
    """Start runs for the contacts of `source` ((sql, params) selecting contact ids, or the ids),
    as the entry policy allows; one INSERT ... SELECT. Returns how many runs started."""
    now = now or timezone.now()
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], str):
        sql, params = source
    else:
        ids = sorted({int(i) for i in source})
        if not ids:
            return 0
        sql, params = "SELECT unnest(%s::bigint[])", [ids]
    with transaction.atomic():
        automation = _get(automation_id)
        if require_active and automation.status != Status.ACTIVE:
            return 0
        first = (
            Step.objects.filter(automation=automation)
            .order_by("position")
            .values_list("id", flat=True)
            .first()
        )
        if first is None:
            return 0
        policy, policy_params = _policy_sql(automation, now)
        with connection.cursor() as cursor:
            # One enrolment of this automation at a time: the policy's NOT EXISTS sees the last one's rows.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [715, automation.pk])
            cursor.execute(
                f"""
                WITH started AS (
                    INSERT INTO automations_run (automation_id, contact_id, step_id, status, next_at,
                        step_entered_at, entered_at, data, exit_reason)
                    SELECT %s, s.id, %s, 'active', %s, %s, %s, %s::jsonb, ''
                    FROM (SELECT DISTINCT id FROM ({sql}) AS q(id)) AS s
                    WHERE EXISTS (SELECT 1 FROM contacts_contact c WHERE c.id = s.id) AND {policy}
                    ORDER BY s.id
                    RETURNING id
                )
                INSERT INTO automations_runevent (run_id, step_id, kind, at, detail)
                SELECT id, NULL, 'entered', %s, %s FROM started
                """,  # noqa: S608 - fixed fragments; every value is a parameter
                [
                    automation.pk,
                    first,
                    now,
                    now,
                    now,
                    json.dumps(data or {}),
                    *params,
                    *policy_params,
                    now,
                    _entry_detail(automation),
                ],
            )
            started = cursor.rowcount
    if started:
        transaction.on_commit(kick)
    return max(started, 0)


def _entry_detail(automation: Automation) -> str:
    return f"trigger: {automation.get_trigger_display().lower()}"


def kick() -> None:
    """Run the scheduler soon (a worker takes the tick) instead of waiting for beat."""
    from automations.tasks import tick_soon

    try:
        tick_soon()
    except Exception:  # Redis or the broker being away only delays the journey until the next beat
        pass


def enrol_by_hand(
    automation_id: int,
    *,
    contact_ids: Iterable[int] = (),
    segment_id: int | None = None,
    list_id: int | None = None,
    by: Any = None,
) -> int:
    """Add contacts by hand: a selection, a segment, or a list (an import lands on a list)."""
    from contacts.selectors import audience_sql, segment_contact_ids_sql

    automation = _get(automation_id)
    if automation.status != Status.ACTIVE:
        raise Conflict("activate the automation before adding contacts", code="state")
    if segment_id is not None:
        source: Any = segment_contact_ids_sql(segment_id)
    elif list_id is not None:
        source = audience_sql(list_ids=[list_id])
    else:
        source = list(contact_ids)
    with transaction.atomic():
        started = enrol(automation_id, source)
        audit_record(
            by,
            "automation.contacts_added",
            automation,
            details={
                "started": started,
                "segment": segment_id,
                "list": list_id,
                "contacts": len(source) if isinstance(source, list) else None,
            },
        )
    return started


def _end_runs(runs: Any, reason: str) -> list[tuple[int, int]]:
    """End these active runs (exited) and cancel their queued messages; returns (run, contact) pairs."""
    from automations.selectors import mailing_ids_of
    from delivery.mailings import mailings_cancel_for_contacts

    now = timezone.now()
    pairs = list(runs.values_list("id", "contact_id", "automation_id"))
    if not pairs:
        return []
    Run.objects.filter(pk__in=[p[0] for p in pairs]).update(
        status=RunStatus.EXITED, finished_at=now, next_at=None, exit_reason=reason[:200]
    )
    RunEvent.objects.bulk_create(
        RunEvent(run_id=p[0], kind="exited", at=now, detail=reason[:300]) for p in pairs
    )
    by_automation: dict[int, list[int]] = {}
    for _, contact_id, automation_id in pairs:
        by_automation.setdefault(automation_id, []).append(contact_id)
    for automation_id, contact_ids in by_automation.items():
        mailings_cancel_for_contacts(mailing_ids_of(automation_id), contact_ids, reason=reason)
    return [(p[0], p[1]) for p in pairs]


def runs_remove(automation_id: int, *, contact_ids: Iterable[int], by: Any = None) -> int:
    """Take contacts out: their active runs end and their queued mail of this automation is cancelled."""
    ids = sorted({int(i) for i in contact_ids})
    with transaction.atomic():
        automation = _get(automation_id)
        ended = _end_runs(
            Run.objects.filter(automation=automation, contact_id__in=ids, status=RunStatus.ACTIVE),
            "removed by hand",
        )
        audit_record(by, "automation.contacts_removed", automation, details={"runs": len(ended)})
    return len(ended)


def runs_end_for_contacts(contact_ids: Iterable[int], reason: str) -> int:
    """Every active run of these contacts ends (unsubscribed, bounced, complained)."""
    ids = sorted({int(i) for i in contact_ids})
    if not ids:
        return 0
    with transaction.atomic():
        return len(_end_runs(Run.objects.filter(contact_id__in=ids, status=RunStatus.ACTIVE), reason))


def runs_wake_engaged(engaged: dict[str, str]) -> int:
    """Runs waiting at an "opened" (or "clicked") branch for a message just opened (clicked) are due
    now: the scheduler takes the branch's yes way at once instead of at its deadline. `engaged` maps
    delivery's idempotency keys to "opened" or "clicked" (messages_engaged). Returns how many woke."""
    from automations.scheduler import run_and_step_of
    from mailplatform.sqlarrays import int_array

    runs, send_steps, clicked = [], [], []
    for key, kind in engaged.items():
        named = run_and_step_of(key)
        if named is not None:
            runs.append(named[0])
            send_steps.append(named[1])
            clicked.append("t" if kind == "clicked" else "f")
    if not runs:
        return 0
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE automations_run r SET next_at = %s
            FROM unnest(%s::bigint[], %s::bigint[], %s::bool[]) AS h(run_id, send_step_id, clicked),
                 automations_step s
            WHERE r.id = h.run_id AND r.status = 'active' AND r.last_send_step_id = h.send_step_id
              AND r.next_at > %s AND s.id = r.step_id AND s.kind = 'branch'
              AND (coalesce(s.config->>'condition', 'opened') = 'opened'
                   OR s.config->>'condition' = 'clicked' AND h.clicked)
            """,
            [now, int_array(runs), int_array(send_steps), "{" + ",".join(clicked) + "}", now],
        )
        woke = cursor.rowcount
    if woke:
        transaction.on_commit(kick)
    return woke


# --- events ---


def event_record(
    *,
    name: str,
    contact_id: int | None = None,
    email: str = "",
    create: bool = False,
    properties: dict[str, Any] | None = None,
    by: Any = None,
) -> tuple[Event, int]:
    """An application's event: stored, and it starts the automations triggered by its name.
    Returns (the event, runs started). The contact is named by id or address (created when asked)."""
    from contacts.models import ConsentSource, Contact
    from contacts.selectors import contact_by_email
    from contacts.services import contact_create

    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("an event needs a name of 1 to 100 characters", field="name")
    if properties is not None and not isinstance(properties, dict):
        raise Invalid("properties must be an object", field="properties")
    if len(json.dumps(properties or {}, default=str)) > 16_000:
        raise Invalid("properties are limited to 16 KB", field="properties")
    with transaction.atomic():
        if contact_id is not None:
            contact = Contact.objects.filter(pk=contact_id).first()
            if contact is None:
                raise NotFound(f"contact {contact_id} does not exist")
        elif email:
            contact = contact_by_email(email)
            if contact is None:
                if not create:
                    raise NotFound("no contact has this address (send create: true to add it)")
                contact = contact_create(email=email, consent_source=ConsentSource.API, by=by)
        else:
            raise Invalid("name the contact by contact_id or email", field="contact_id")
        now = timezone.now()
        event = Event.objects.create(contact_id=contact.pk, name=name, properties=properties or {}, at=now)
        started = 0
        payload = {
            "event": {
                "name": name,
                **(properties or {}),
                "properties": properties or {},
                "at": now.isoformat(),
            }
        }
        for automation_id in Automation.objects.filter(
            status=Status.ACTIVE, trigger=Trigger.EVENT, trigger_event=name
        ).values_list("id", flat=True):
            started += enrol(automation_id, [contact.pk], data=payload, now=now)
    return event, started


# --- the webhook step ---


def webhook_call(run_id: int, step_id: int) -> None:
    """POST the run's contact and automation to the step's URL (the SSRF check of outbound webhooks)."""
    from contacts.selectors import contact_merge_data
    from mailplatform.crypto import decrypt
    from mailplatform.webhooks import SIGNATURE_HEADER, post, sign

    run = Run.objects.filter(pk=run_id).select_related("automation").first()
    step = Step.objects.filter(pk=step_id).first()
    if run is None or step is None:
        return
    contact = contact_merge_data([run.contact_id]).get(run.contact_id, {})
    body = json.dumps(
        {
            "automation": {"id": run.automation_id, "name": run.automation.name},
            "run": run.pk,
            "step": step.pk,
            "contact": {"id": run.contact_id, **contact},
            "data": run.data,
        },
        default=str,
    ).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Posthorn-Automations"}
    secret = decrypt(run.automation.webhook_secret_encrypted)
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body, int(time.time()))
    result = post(str(step.config.get("url", "")), body, headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    detail = f"webhook: {result.status_code or result.error}"[:300]
    RunEvent.objects.create(run_id=run_id, step_id=step_id, kind="webhook", at=timezone.now(), detail=detail)
