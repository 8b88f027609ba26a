"""Probes for orchestrators: /healthz (alive), /readyz (can serve), manage.py worker_health."""

import time

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from mailplatform import selectors, workers
from mailplatform.selectors import ServiceState


def test_healthz_answers_alive_without_login_or_a_database(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_redis_broker_and_migrations(client):
    response = client.get(reverse("readyz"))
    assert response.json() == {
        "status": "ok",
        "database": "up",
        "redis": "up",
        "broker": "up",
        "migrations": "up",
    }
    assert response.status_code == 200


@pytest.mark.django_db
def test_probes_answer_whatever_the_host_header(client):
    # Orchestrators probe by the container's address, which ALLOWED_HOSTS does not list.
    assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.django_db
def test_readyz_names_what_is_down_and_keeps_the_reason_out_of_the_page(client, monkeypatch, caplog):
    secret_reason = 'connection to server at "10.0.0.5" failed for user "posthorn"'
    monkeypatch.setattr(selectors, "broker_state", lambda: ServiceState("broker", False, secret_reason))
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["broker"] == "down"
    assert "10.0.0.5" not in response.content.decode()
    assert secret_reason in caplog.text


@pytest.mark.django_db
def test_readyz_sees_an_unapplied_migration(monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(selectors, "_migrations_applied", False)
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [("a", False)])
    state = selectors.migrations_state()
    assert not state.up and "1 unapplied" in state.detail


def test_broker_state_is_down_when_the_broker_is_unreachable(settings):
    from tests.conftest import celery_on_broker

    with celery_on_broker("amqp://guest:guest@127.0.0.1:1//"):
        state = selectors.broker_state()
    assert not state.up


def test_worker_health_reads_the_heartbeats():
    workers.heartbeat("fresh@test-host-a")
    workers.heartbeat("stale@test-host-b", now=time.time() - 300)
    try:
        call_command("worker_health", "--node", "fresh@test-host-a")
        assert selectors.worker_state().up  # the dashboard's worker line reads the same heartbeats
        with pytest.raises(CommandError, match="last heartbeat 300 s ago"):
            call_command("worker_health", "--node", "stale@test-host-b")
        with pytest.raises(CommandError, match="no heartbeat"):
            call_command("worker_health", "--node", "missing@nowhere")
    finally:
        workers.forget("fresh@test-host-a")
        workers.forget("stale@test-host-b")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_beats_and_forgets_itself_when_stopped():
    from tests.conftest import start_celery_worker, stop_processes

    before = set(workers.last_heartbeats())
    process = start_celery_worker(queues="default", label="heartbeat")
    try:
        new = set(workers.last_heartbeats()) - before
        assert len(new) == 1, f"expected the one new worker's heartbeat, got {new}"
        (node,) = new
        call_command("worker_health", "--node", node)
    finally:
        stop_processes([process])
    assert node not in workers.last_heartbeats()
    with pytest.raises(CommandError, match="no heartbeat"):
        call_command("worker_health", "--node", node)
