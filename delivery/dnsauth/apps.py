from django.apps import AppConfig


class DnsAuthConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery.dnsauth"
    label = "dnsauth"
    verbose_name = "DNS authentication checks"

    def ready(self) -> None:
        from django.conf import settings

        from mailplatform import beat

        beat.every(settings.DNS_CHECK_SECONDS, "delivery.dnsauth.tasks.dns_checks_run", name="dns-checks")
