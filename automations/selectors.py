"""Reads: automations with their figures, a flow's per-step counts, a contact's runs."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from automations.models import Automation, Run, RunEvent, RunStatus, Status, Step, StepKind, StepMailing


def mailing_ids_of(automation_id: int) -> list[int]:
    return list(
        StepMailing.objects.filter(step__automation_id=automation_id).values_list("mailing_id", flat=True)
    )


def automation_list() -> QuerySet[Automation]:
    return Automation.objects.annotate(
        active_runs=Count("runs", filter=Q(runs__status=RunStatus.ACTIVE)),
        entered=Count("runs"),
        finished=Count("runs", filter=~Q(runs__status=RunStatus.ACTIVE)),
    ).order_by("-id")


def automation_figures(automation_id: int) -> dict[str, Any]:
    """Sent / opened / clicked of all the automation's mail (delivery's figures of its Mailings)."""
    from delivery.selectors import mailing_figures

    figures = mailing_figures(mailing_ids_of(automation_id))
    return {k: figures[k] for k in ("sent", "human_opens", "human_clicks", "skipped", "queued")}


def step_counts(automation_id: int) -> dict[int, dict[str, int]]:
    """Per step: runs waiting there now, and for send steps the sent / opened / clicked figures."""
    from delivery.selectors import mailing_figures

    waiting = dict(
        Run.objects.filter(automation_id=automation_id, status=RunStatus.ACTIVE)
        .values_list("step_id")
        .annotate(n=Count("id"))
        .values_list("step_id", "n")
    )
    mailings: dict[int, list[int]] = {}
    for step_id, mailing_id in StepMailing.objects.filter(step__automation_id=automation_id).values_list(
        "step_id", "mailing_id"
    ):
        mailings.setdefault(step_id, []).append(mailing_id)
    result = {}
    for step in Step.objects.filter(automation_id=automation_id):
        counts = {"waiting": waiting.get(step.pk, 0), "sent": 0, "opened": 0, "clicked": 0}
        if step.kind == StepKind.SEND and step.pk in mailings:
            figures = mailing_figures(mailings[step.pk])
            counts.update(
                sent=figures["sent"], opened=figures["human_opens"], clicked=figures["human_clicks"]
            )
        result[step.pk] = counts
    return result


def runs_of_contact(contact_id: int) -> QuerySet[Run]:
    return Run.objects.filter(contact_id=contact_id).select_related("automation", "step").order_by("-id")[:50]


def run_history(run_id: int) -> QuerySet[RunEvent]:
    return RunEvent.objects.filter(run_id=run_id).order_by("id")


def runs_page(automation_id: int, *, status: str = "", limit: int = 100) -> QuerySet[Run]:
    runs = Run.objects.filter(automation_id=automation_id).select_related("step")
    if status in RunStatus.values:
        runs = runs.filter(status=status)
    return runs.order_by("-id")[:limit]


def ledger_rows_per_run_and_step(automation_id: int) -> tuple[int, int]:
    """(ledger rows of the automation's sends, distinct run-and-step keys among them): equal when
    no step was ever enqueued twice (the SIGKILL test and the benchmark read it)."""
    from delivery.selectors import ledger_key_counts

    return ledger_key_counts(mailing_ids_of(automation_id))


def webhook_secret(automation: Automation) -> str:
    """The secret its webhook steps sign with, for the receiver's side ("" before the first one)."""
    from mailplatform.crypto import decrypt

    return decrypt(automation.webhook_secret_encrypted)


def scheduler_backlog_metrics() -> list[Any]:
    """Prometheus: runs of active automations whose next move is due, and how late the latest is
    (one query on the partial index of due runs): a scheduler that falls behind shows here first."""
    from django.db import connection
    from django.utils import timezone

    from mailplatform.metrics import gauge, single

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), min(r.next_at) FROM automations_run r
            JOIN automations_automation a ON a.id = r.automation_id
            WHERE r.status = %s AND r.next_at <= %s AND a.status = %s
            """,
            [RunStatus.ACTIVE, timezone.now(), Status.ACTIVE],
        )
        due, oldest = cursor.fetchone()
    late = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    return [
        single(gauge("automation_runs_due", "Runs of active automations whose next move is due"), due),
        single(
            gauge("automation_oldest_due_seconds", "How long the most overdue run has waited for its move"),
            max(late, 0.0),
        ),
    ]
