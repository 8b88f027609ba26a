"""Receivers for other apps' signals: a confirmed subscription starts the list's journeys; a person
opening or clicking an automation's message wakes the run waiting on it at a branch."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def list_joined(sender: Any, contact_id: int, list_id: int, **kwargs: Any) -> None:
    """Sent after the subscription's commit; a failure here must not fail the person's request."""
    from automations.triggers import on_list_joined

    try:
        on_list_joined(contact_id, list_id)
    except Exception:
        log.exception(
            "automations: starting the journeys of list %s for contact %s failed", list_id, contact_id
        )


def messages_engaged(sender: Any, engaged: dict[str, str], **kwargs: Any) -> None:
    """Sent inside tracking's transaction: a failure here is logged and rolled back to a savepoint,
    never lost hits. The run then takes its branch at the deadline, where the scheduler looks at
    the opens again, so only the yes way's promptness is lost."""
    from django.db import transaction

    from automations.services import runs_wake_engaged

    try:
        with transaction.atomic():
            runs_wake_engaged(engaged)
    except Exception:
        log.exception("automations: waking the runs of %s engaged messages failed", len(engaged))
