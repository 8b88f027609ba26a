"""Receivers for contacts' signals: a confirmed subscription starts the list's journeys."""

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
