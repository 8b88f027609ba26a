"""Re-encrypt every stored secret with the newest ENCRYPTION_KEYS key."""

from django.core.management.base import BaseCommand, CommandError

from mailplatform.crypto import SecretUnreadable, rotate_all


class Command(BaseCommand):
    help = (
        "After prepending a new key to ENCRYPTION_KEYS, re-encrypt every stored secret (relay and bounce "
        "mailbox passwords, DKIM keys, webhook secrets) with it; the old key can then be removed."
    )

    def handle(self, *args, **options):
        try:
            count = rotate_all()
        except SecretUnreadable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted {count} secrets with the newest key")
