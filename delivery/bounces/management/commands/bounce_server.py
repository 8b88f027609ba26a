"""Run the SMTP listener for the bounce domain (started by `make run` too)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from delivery.bounces.server import bounce_controller
from delivery.bounces.services import bounce_domain
from mailplatform.smtp_listener import serve_until_stopped


class Command(BaseCommand):
    help = "Receive bounces and complaints by SMTP for the bounce domain (not an open relay)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.BOUNCE_SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.BOUNCE_SMTP_PORT)

    def handle(self, *args, host: str, port: int, **options):
        controller = bounce_controller(
            host,
            port,
            max_bytes=settings.BOUNCE_MAX_MESSAGE_BYTES,
            per_minute=settings.BOUNCE_MAX_PER_MINUTE_PER_CLIENT,
            classify_processes=settings.BOUNCE_CLASSIFY_PROCESSES,
            flood_exempt=settings.BOUNCE_FLOOD_EXEMPT_PEERS,
        )
        serve_until_stopped(
            controller,
            host,
            port,
            lambda: self.stdout.write(f"bounce listener for @{bounce_domain()} on {host}:{port}"),
        )
