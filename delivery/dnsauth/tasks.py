"""Beat re-checks DNS (registered in apps.py)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="delivery.dnsauth.tasks.dns_checks_run", ignore_result=True)
def dns_checks_run() -> dict[str, int]:
    from delivery.dnsauth import services

    return services.dns_checks_run()
