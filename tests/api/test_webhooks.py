"""Outbound webhooks against a real HTTP server on loopback: signed, retried with backoff, logged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from mailplatform import crypto, services, webhooks
from mailplatform.models import WebhookDelivery, WebhookEndpoint


class Receiver:
    """A loopback HTTP server that answers with the queued status codes (then 200) and keeps requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"thanks" if status == 200 else b"broken")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/posthorn?x=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def loopback_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


def _subscribe(url: str, events=("bounced",)) -> tuple[WebhookEndpoint, str]:
    return services.webhook_endpoint_create(url=url, event_types=list(events), by=None)


@pytest.mark.django_db
def test_signed_delivery_reaches_the_receiver(receiver, loopback_allowed, django_capture_on_commit_callbacks):
    endpoint, secret = _subscribe(receiver.url, ["bounced", "opened"])
    _subscribe(receiver.url.replace("/hooks", "/other"), ["clicked"])  # not subscribed to bounced
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.webhook_emit("bounced", {"email": "ann@example.com", "kind": "hard"}) == 1
    assert len(callbacks) == 1
    delivery = WebhookDelivery.objects.get()
    assert services.webhook_attempt(delivery.pk) is None
    [request] = receiver.requests
    assert request["path"] == "/hooks/posthorn?x=1"
    header = request["headers"][webhooks.SIGNATURE_HEADER]
    assert webhooks.verify(secret, request["body"], header)
    assert not webhooks.verify("whsec_wrong", request["body"], header)
    assert not webhooks.verify(secret, request["body"] + b" ", header)
    body = json.loads(request["body"])
    assert body["type"] == "bounced" and body["data"] == {"email": "ann@example.com", "kind": "hard"}
    assert body["id"] == request["headers"]["Posthorn-Delivery"] == str(delivery.event_id)
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 1 and delivery.last_status_code == 200
    assert crypto.decrypt(endpoint.secret_encrypted) == secret and secret not in endpoint.secret_encrypted


@pytest.mark.django_db
def test_failures_are_retried_with_backoff_then_given_up(receiver, loopback_allowed, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    _subscribe(receiver.url)
    services.webhook_emit("bounced", {"n": 1})
    delivery = WebhookDelivery.objects.get()
    receiver.statuses = [500, 503, 500]
    assert services.webhook_attempt(delivery.pk) == 10
    assert services.webhook_attempt(delivery.pk) == 40
    delivery.refresh_from_db()
    assert delivery.status == "retrying" and delivery.attempts == 2 and delivery.last_status_code == 503
    assert delivery.next_attempt_at is not None and "HTTP 503" in delivery.last_error
    assert services.webhook_attempt(delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 3 and delivery.last_response == "broken"
    assert services.webhook_attempt(delivery.pk) is None  # a finished delivery is never posted again
    assert len(receiver.requests) == 3
    assert services.webhook_retry_delay(20) == 6 * 3600  # capped


@pytest.mark.django_db
def test_a_refused_connection_is_logged_and_retried(loopback_allowed):
    _subscribe("http://127.0.0.1:9/nobody-listens")
    services.webhook_emit("bounced", {"n": 1})
    delivery = WebhookDelivery.objects.get()
    assert services.webhook_attempt(delivery.pk) is not None
    delivery.refresh_from_db()
    assert delivery.status == "retrying" and delivery.last_status_code is None
    assert "ConnectionRefused" in delivery.last_error


@pytest.mark.django_db
def test_redirects_are_not_followed(receiver, loopback_allowed):
    receiver.statuses = [302]
    _subscribe(receiver.url)
    services.webhook_emit("bounced", {})
    delivery = WebhookDelivery.objects.get()
    services.webhook_attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "retrying" and delivery.last_status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8000/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "ftp://example.com/x",
        "http://user:pw@example.com/x",
    ],
)
def test_private_and_odd_urls_are_refused(url):
    with pytest.raises(services.WebhookError):
        _subscribe(url)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_delivery_rechecks_the_address(receiver, loopback_allowed, settings):
    """A subscription made while allowed (or a DNS answer that changed) is checked again at delivery."""
    _subscribe(receiver.url)
    services.webhook_emit("bounced", {})
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    delivery = WebhookDelivery.objects.get()
    services.webhook_attempt(delivery.pk)
    delivery.refresh_from_db()
    assert receiver.requests == [] and "private, loopback or reserved" in delivery.last_error


@pytest.mark.django_db
def test_emit_without_subscribers_or_with_a_paused_one(receiver, loopback_allowed):
    assert services.webhook_emit("delivered", {"x": 1}) == 0
    endpoint, _ = _subscribe(receiver.url, ["delivered"])
    services.webhook_endpoint_update(endpoint, active=False, by=None)
    assert services.webhook_emit("delivered", {"x": 1}) == 0
    with pytest.raises(services.WebhookError):
        services.webhook_emit("exploded", {})


@pytest.mark.django_db
def test_rollback_emits_nothing(receiver, loopback_allowed):
    from django.db import transaction

    _subscribe(receiver.url)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.webhook_emit("bounced", {})
        raise RuntimeError("the change that caused the event failed")
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_api_manages_subscriptions_and_shows_the_log(api, receiver, loopback_allowed):
    created = api.post(
        "/api/v1/webhooks/", {"url": receiver.url, "event_types": ["clicked", "opened"]}, format="json"
    )
    assert created.status_code == 201, created.content
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["event_types"] == ["clicked", "opened"]
    shown = api.get(f"/api/v1/webhooks/{endpoint['id']}/").json()
    assert "secret" not in shown and "secret_encrypted" not in shown
    services.webhook_emit("clicked", {"url": "https://example.com"})
    services.webhook_attempt(WebhookDelivery.objects.get().pk)
    log = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/").json()["results"]
    assert log[0]["status"] == "succeeded" and log[0]["event_type"] == "clicked"
    patched = api.patch(f"/api/v1/webhooks/{endpoint['id']}/", {"active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert api.delete(f"/api/v1/webhooks/{endpoint['id']}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_dashboard_subscribe_test_and_redeliver(
    developer_client, receiver, loopback_allowed, django_capture_on_commit_callbacks
):
    response = developer_client.post(
        reverse("webhooks"),
        {"url": receiver.url, "event_types": ["unsubscribed"], "description": "CRM"},
        follow=True,
    )
    assert response.status_code == 200 and response.context["new_secret"].startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        developer_client.post(reverse("webhook-detail", args=[endpoint.pk]), {"action": "test"})
    delivery = WebhookDelivery.objects.get()
    services.webhook_attempt(delivery.pk)
    page = developer_client.get(reverse("webhook-detail", args=[endpoint.pk])).content.decode()
    assert "succeeded" in page and "HTTP 200" in page
    with django_capture_on_commit_callbacks(execute=False):
        developer_client.post(
            reverse("webhook-detail", args=[endpoint.pk]), {"action": "redeliver", "delivery": delivery.pk}
        )
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    services.webhook_attempt(delivery.pk)
    assert len(receiver.requests) == 2


def test_marketers_cannot_manage_webhooks(marketer_client):
    assert marketer_client.get(reverse("webhooks")).status_code == 403


@pytest.fixture
def worker_allowing_loopback(transactional_db, monkeypatch, request, settings):
    """A real Celery worker that may post to loopback and retries after a second."""
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "1")
    monkeypatch.setenv("WEBHOOK_RETRY_BASE_SECONDS", "1")
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    return request.getfixturevalue("celery_worker_process")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_and_retries(worker_allowing_loopback, receiver):
    """End to end: the emit commits, the worker posts, a 500 is retried after the backoff."""
    from django.db import transaction

    receiver.statuses = [500]
    _, secret = _subscribe(receiver.url, ["subscribed"])
    with transaction.atomic():
        services.webhook_emit("subscribed", {"email": "new@example.com"})
    delivery = WebhookDelivery.objects.get()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status == "succeeded":
            break
        time.sleep(0.2)
    assert delivery.status == "succeeded" and delivery.attempts == 2
    assert [
        webhooks.verify(secret, r["body"], r["headers"][webhooks.SIGNATURE_HEADER]) for r in receiver.requests
    ] == [
        True,
        True,
    ]


@pytest.mark.django_db
def test_webhook_secrets_rotate_with_every_other_secret(settings, capsys):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    assert {(model._meta.label, field) for model, field in crypto.secret_columns()} == {
        ("delivery.Relay", "password_encrypted"),
        ("delivery.SendingIdentity", "dkim_private_key_encrypted"),
        ("bounces.BounceMailbox", "password_encrypted"),
        ("mailplatform.WebhookEndpoint", "secret_encrypted"),
        ("automations.Automation", "webhook_secret_encrypted"),
    }
    endpoint, secret = _subscribe("https://hooks.example.com/in", ["bounced"])
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, *settings.ENCRYPTION_KEYS]
    call_command("rotate_keys")
    assert "re-encrypted 1 secrets" in capsys.readouterr().out
    settings.ENCRYPTION_KEYS = [new_key]  # the old key (and the derived one) no longer needed
    endpoint.refresh_from_db()
    assert crypto.decrypt(endpoint.secret_encrypted) == secret
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(endpoint.secret_encrypted)


@pytest.mark.django_db
def test_the_migration_moves_stored_webhook_secrets_to_the_rotatable_keys() -> None:
    from importlib import import_module

    from django.apps import apps

    migration = import_module("mailplatform.migrations.0004_webhook_secrets_under_rotatable_keys")
    endpoint, secret = _subscribe("https://hooks.example.com/in", ["bounced"])
    old = migration._old_fernet().encrypt(secret.encode()).decode()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_encrypted=old)
    migration.reencrypt(apps, None)
    endpoint.refresh_from_db()
    assert endpoint.secret_encrypted != old and crypto.decrypt(endpoint.secret_encrypted) == secret
