from django.conf import settings
from django.core.management.base import BaseCommand

from mailplatform.capture import capture_controller
from mailplatform.smtp_listener import serve_until_stopped


class Command(BaseCommand):
    help = (
        "Run the local capture relay: an SMTP server on loopback that keeps every message for the dashboard."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.CAPTURE_SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.CAPTURE_SMTP_PORT)

    def handle(self, *args, host: str, port: int, **options):
        controller = capture_controller(host, port, settings.CAPTURE_MAX_MESSAGE_BYTES)
        serve_until_stopped(
            controller, host, port, lambda: self.stdout.write(f"capture relay listening on {host}:{port}")
        )
