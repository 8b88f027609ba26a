import pytest
from django.urls import reverse

from mailplatform import selectors
from mailplatform.selectors import ServiceState


@pytest.mark.django_db
def test_healthz_answers_without_login_and_reports_each_service(client, monkeypatch):
    # No worker runs in this test: healthz must say so honestly, not claim all is well.
    monkeypatch.setattr(
        selectors, "worker_state", lambda: ServiceState("worker", False, "0 worker(s) answering")
    )
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "up", "redis": "up", "worker": "down"}


@pytest.mark.slow
def test_healthz_sees_a_real_worker(client, celery_worker_process):
    from django.core.cache import cache

    cache.delete("health:workers")
    response = client.get(reverse("healthz"))
    assert response.json()["worker"] == "up"
    assert response.status_code == 200
