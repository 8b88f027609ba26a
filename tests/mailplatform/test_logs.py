"""LOG_FORMAT=json: one object per line with the ids in scope, the same ids in task logs, no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.test import RequestFactory

from mailplatform import logs, selectors
from mailplatform.selectors import ServiceState


@pytest.fixture
def json_lines():
    """Log records written as JSON when emitted (so the context of the moment is in them)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_each_record_is_one_json_object_with_the_bound_ids_and_no_secrets(json_lines):
    log = logging.getLogger("posthorn.test")
    with logs.bind(mailing=7, relay=3, message_id=42):
        log.warning(
            "relay failed: postgresql://posthorn:hunter2@db/posthorn, Authorization: Bearer phk_ab12_s3cr3t, "
            "password=swordfish\nsecond line"
        )
    log.warning("outside")
    first, second = json_lines()
    assert first["mailing"] == 7 and first["relay"] == 3 and first["message_id"] == 42
    assert first["level"] == "WARNING" and first["logger"] == "posthorn.test"
    for secret in ("hunter2", "s3cr3t", "swordfish"):
        assert secret not in json.dumps(first)
    assert "postgresql://posthorn:***@db/posthorn" in first["message"]
    assert "mailing" not in second  # unbound after the block


@pytest.mark.django_db
def test_a_request_logs_its_request_id_and_echoes_it(client, json_lines, monkeypatch):
    monkeypatch.setattr(selectors, "broker_state", lambda: ServiceState("broker", False, "refused"))
    response = client.get("/readyz", HTTP_X_REQUEST_ID="req-1234abcd")
    assert response["X-Request-ID"] == "req-1234abcd"
    (line,) = [entry for entry in json_lines() if entry["logger"] == "mailplatform.views"]
    assert line["request_id"] == "req-1234abcd"
    assert "user" not in line  # /readyz never loaded a session for its log line
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert len(generated) == 32 and " " not in generated


def test_the_user_is_named_by_id_once_the_request_has_loaded_it(json_lines):
    from django.utils.functional import SimpleLazyObject

    class User:
        pk = 5
        is_authenticated = True

    def view(request):
        request.user.pk  # the view looks at its user, so the log may name it  # noqa: B018
        logging.getLogger("posthorn.view").warning("did something")
        return "ok"

    request = RequestFactory().get("/")
    request.user = SimpleLazyObject(User)
    logs.LogUserMiddleware(view)(request)
    (line,) = json_lines()
    assert line["user"] == 5
