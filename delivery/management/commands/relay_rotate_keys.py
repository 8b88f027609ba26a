"""Re-encrypt relay passwords and DKIM keys with the newest DELIVERY_ENCRYPTION_KEYS key."""

from django.core.management.base import BaseCommand, CommandError

from delivery import services
from delivery.crypto import SecretUnreadable


class Command(BaseCommand):
    help = (
        "After prepending a new key to DELIVERY_ENCRYPTION_KEYS, re-encrypt every stored secret with it; "
        "the old key can then be removed."
    )

    def handle(self, *args, **options):
        try:
            count = services.relay_rotate_keys()
        except SecretUnreadable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted {count} secrets with the newest key")
