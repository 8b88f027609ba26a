"""Celery tasks (queue "imports"): take ids, load, call a service."""

from __future__ import annotations

import logging

from celery import shared_task

from contacts import services
from contacts.imports import ImportFileError

log = logging.getLogger(__name__)


@shared_task(name="contacts.tasks.import_contacts_task", acks_late=True)
def import_contacts_task(import_id: int) -> None:
    try:
        services.contact_import_run(import_id)
    except ImportFileError as exc:
        # The user's file is at fault: the import row shows the message; nothing to retry.
        log.info("import %s refused: %s", import_id, exc)
