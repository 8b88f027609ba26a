"""Connect to a relay as the engine would and say what it offers, or what is wrong."""

from django.core.management.base import BaseCommand, CommandError

from delivery import relays
from delivery.models import Relay
from delivery.smtp import RelayError


class Command(BaseCommand):
    help = "Test a relay: connect, EHLO, STARTTLS and AUTH as configured, and list its capabilities."

    def add_arguments(self, parser):
        parser.add_argument("relay", help="relay name or id")

    def handle(self, *args, relay: str, **options):
        found = (
            Relay.objects.filter(pk=int(relay)).first()
            if relay.isdigit()
            else Relay.objects.filter(name=relay).first()
        )
        if found is None:
            raise CommandError(f"no relay named {relay!r}")
        try:
            info = relays.relay_test(found)
        except RelayError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{found.name}: {info.banner}")
        self.stdout.write(
            f"TLS: {info.tls_version or ('yes' if info.tls else 'no')}; authenticated: {info.authenticated}"
        )
        self.stdout.write(
            "capabilities: " + ", ".join(f"{k.upper()} {v}".strip() for k, v in sorted(info.esmtp.items()))
        )
