"""Re-encrypt relay passwords, DKIM keys and bounce mailbox passwords with the newest
DELIVERY_ENCRYPTION_KEYS key."""

from django.core.management.base import BaseCommand, CommandError

from delivery import services
from delivery.bounces.mailboxes import mailbox_rotate_keys
from delivery.crypto import SecretUnreadable


class Command(BaseCommand):
    help = (
        "After prepending a new key to DELIVERY_ENCRYPTION_KEYS, re-encrypt every stored secret with it; "
        "the old key can then be removed."
    )

    def handle(self, *args, **options):
        try:
            count = services.relay_rotate_keys() + mailbox_rotate_keys()
        except SecretUnreadable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted {count} secrets with the newest key")
