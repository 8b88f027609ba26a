"""Serve the Prometheus metrics on a port of their own (no token: bind it where only Prometheus reaches)."""

from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.management.base import BaseCommand
from prometheus_client import make_wsgi_app

from mailplatform.metrics import REGISTRY


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class names it; one line per scrape would drown the log
        pass


class Command(BaseCommand):
    help = "Serve /metrics for Prometheus on --bind:--port (default 127.0.0.1:9808), without a token."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9808)

    def handle(self, *args, bind="127.0.0.1", port=9808, **options):
        server = make_server(bind, port, make_wsgi_app(REGISTRY), handler_class=_QuietHandler)
        self.stdout.write(f"metrics on http://{bind}:{server.server_port}/metrics")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
