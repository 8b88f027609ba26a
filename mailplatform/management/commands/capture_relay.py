import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailplatform.capture import capture_controller


class Command(BaseCommand):
    help = (
        "Run the local capture relay: an SMTP server on loopback that keeps every message for the dashboard."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.CAPTURE_SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.CAPTURE_SMTP_PORT)

    def handle(self, *args, host: str, port: int, **options):
        controller = capture_controller(host, port, settings.CAPTURE_MAX_MESSAGE_BYTES)
        try:
            controller.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.stdout.write(f"capture relay listening on {host}:{port}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
