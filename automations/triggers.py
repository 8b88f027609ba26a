"""Triggers: what starts a run. Joined a list (contacts' signal), events (automations.services),
and the scheduled ones: entered a segment (incremental: only newcomers since the last look), a
date field at a local hour, a campaign's human opens and clicks (a watermark over delivery's events)."""

from __future__ import annotations

import logging
from collections import Counter

from django.db import connection, transaction
from django.utils import timezone

from automations.models import Automation, Status, Trigger
from automations.services import enrol

log = logging.getLogger(__name__)


def on_list_joined(contact_id: int, list_id: int) -> int:
    started = 0
    for automation_id in Automation.objects.filter(
        status=Status.ACTIVE, trigger=Trigger.LIST_JOINED, trigger_list_id=list_id
    ).values_list("id", flat=True):
        started += enrol(automation_id, [contact_id])
    return started


def segment_entries(automation: Automation) -> int:
    """Contacts in the trigger segment now and not at the last look enter; leavers are forgotten
    (so they enter again if they come back, as the entry policy allows)."""
    from contacts.selectors import segment_contact_ids_sql

    if automation.trigger_segment_id is None:
        return 0
    sql, params = segment_contact_ids_sql(automation.trigger_segment_id)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH now_in AS ({sql}),
            gone AS (
                DELETE FROM automations_segmentmember m WHERE m.automation_id = %s
                AND NOT EXISTS (SELECT 1 FROM now_in WHERE now_in.id = m.contact_id)
            )
            INSERT INTO automations_segmentmember (automation_id, contact_id)
            SELECT %s, now_in.id FROM now_in
            ON CONFLICT (automation_id, contact_id) DO NOTHING
            RETURNING contact_id
            """,  # noqa: S608 - the segment's compiled, parameterised SQL
            [*params, automation.pk, automation.pk],
        )
        newcomers = [row[0] for row in cursor.fetchall()]
        return enrol(automation.pk, newcomers) if newcomers else 0


def date_field_entries(automation: Automation) -> int:
    from contacts.selectors import contacts_with_date_at_local_hour

    source = contacts_with_date_at_local_hour(
        automation.trigger_field, automation.trigger_hour, timezone.now()
    )
    return enrol(automation.pk, source)


def campaign_engagement_entries(automation: Automation) -> int:
    from delivery.selectors import human_engagement_since

    rows = human_engagement_since(
        automation.trigger_watermark,
        meta_key="campaign_id",
        meta_value=int(automation.trigger_campaign_id or 0),
        clicked=automation.trigger == Trigger.CAMPAIGN_CLICKED,
    )
    if not rows:
        return 0
    with transaction.atomic():
        started = enrol(automation.pk, [contact for _, contact in rows])
        Automation.objects.filter(pk=automation.pk).update(trigger_watermark=rows[-1][0])
    return started


SCHEDULED = {
    Trigger.SEGMENT_ENTERED: segment_entries,
    Trigger.DATE_FIELD: date_field_entries,
    Trigger.CAMPAIGN_OPENED: campaign_engagement_entries,
    Trigger.CAMPAIGN_CLICKED: campaign_engagement_entries,
}


def exit_sweep(chunk: int = 5000) -> int:
    """End, now rather than when each is next due, the active runs whose contact unsubscribed,
    bounced, complained or was suppressed, left the trigger's list, or entered the exit segment;
    their queued mail is cancelled (automations.services._end_runs). Walks the active runs' contacts
    in chunks, keyset by contact id."""
    from automations.models import Run, RunStatus
    from automations.services import _end_runs
    from contacts.selectors import contacts_not_subscribed, segment_members, unsendable_contact_ids

    ended = 0
    after = 0
    while True:
        ids = list(
            Run.objects.filter(status=RunStatus.ACTIVE, contact_id__gt=after)
            .order_by("contact_id")
            .values_list("contact_id", flat=True)
            .distinct()[:chunk]
        )
        if not ids:
            return ended
        after = ids[-1]
        gone = unsendable_contact_ids(ids)
        if gone:
            with transaction.atomic():
                runs = Run.objects.filter(status=RunStatus.ACTIVE, contact_id__in=gone)
                ended += len(_end_runs(runs, "contact unsubscribed, bounced or complained"))
        for automation in Automation.objects.filter(
            runs__status=RunStatus.ACTIVE, runs__contact_id__in=ids
        ).distinct():
            members = [i for i in ids if i not in gone]
            left: set[int] = set()
            if automation.exit_on_unsubscribe and automation.list_ids:
                left |= contacts_not_subscribed(members, automation.list_ids)
            if automation.exit_segment_id:
                left |= segment_members(automation.exit_segment_id, members)
            if left:
                with transaction.atomic():
                    runs = Run.objects.filter(
                        automation=automation, status=RunStatus.ACTIVE, contact_id__in=left
                    )
                    ended += len(_end_runs(runs, "left the automation's list or entered its exit segment"))


def scheduled_triggers() -> dict[str, int]:
    """The beat's look at every active automation with a scheduled trigger, then the exit sweep."""
    counts: Counter[str] = Counter()
    try:
        counts["exited"] = exit_sweep()
    except Exception:
        log.exception("automations: the exit sweep failed")
    for automation in Automation.objects.filter(status=Status.ACTIVE, trigger__in=list(SCHEDULED)):
        try:
            counts[automation.trigger] += SCHEDULED[Trigger(automation.trigger)](automation)
        except Exception:
            log.exception("automation %s: its trigger failed", automation.pk)
    return dict(counts)
