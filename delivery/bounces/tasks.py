from celery import shared_task

from delivery.bounces.mailboxes import mailbox_poll
from delivery.bounces.models import BounceMailbox
from delivery.bounces.services import evidence_prune


@shared_task(ignore_result=True)
def bounce_mailbox_poll(mailbox_id: int) -> int:
    mailbox = BounceMailbox.objects.filter(pk=mailbox_id, enabled=True).first()
    return mailbox_poll(mailbox) if mailbox else 0


@shared_task(ignore_result=True)
def bounce_mailboxes_poll() -> None:
    """Run by beat: one task per enabled mailbox, so a slow server delays only itself."""
    for mailbox_id in BounceMailbox.objects.filter(enabled=True).values_list("id", flat=True):
        bounce_mailbox_poll.delay(mailbox_id)
    evidence_prune()
