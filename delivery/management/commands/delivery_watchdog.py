"""What the beat does every few seconds, once, in this process (for a setup without beat)."""

from django.core.management.base import BaseCommand

from delivery import engine


class Command(BaseCommand):
    help = "Recover expired leases, requeue due deferred messages and restart stalled mailings, once."

    def handle(self, *args, **options):
        result = engine.watchdog()
        self.stdout.write(", ".join(f"{key}: {value}" for key, value in result.items()))
