"""Exit 0 when a Celery worker on this host beat recently: a container health check for workers."""

import socket
import time

from django.core.management.base import BaseCommand, CommandError

from mailplatform.workers import HEARTBEAT_SECONDS, last_heartbeats


class Command(BaseCommand):
    help = (
        "Healthy (exit 0) when the worker named by --node, or any worker on this host (node names "
        "ending in @<hostname>), wrote its heartbeat to Redis within --max-age seconds; exit 1 otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument("--node", help="the worker's node name (celery -n), e.g. sending@host1")
        parser.add_argument(
            "--max-age", type=float, default=HEARTBEAT_SECONDS * 6, help="seconds (default 60)"
        )

    def handle(self, *args, node=None, max_age=60.0, **options):
        try:
            beats = last_heartbeats()
        except Exception as exc:
            raise CommandError(f"cannot read worker heartbeats from Redis: {exc}") from None
        if node:
            mine = {name: at for name, at in beats.items() if name == node}
        else:
            host = socket.gethostname()
            mine = {name: at for name, at in beats.items() if name.endswith(f"@{host}")}
        if not mine:
            raise CommandError(f"no heartbeat from {node or 'any worker on ' + socket.gethostname()}")
        name, at = max(mine.items(), key=lambda item: item[1])
        age = time.time() - at
        if age > max_age:
            raise CommandError(f"{name}: last heartbeat {age:.0f} s ago (more than {max_age:.0f} s)")
        self.stdout.write(f"{name}: last heartbeat {age:.1f} s ago")
