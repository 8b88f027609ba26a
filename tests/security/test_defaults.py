"""Issue #12: a fresh install's defaults. DEBUG was on when unset, so the Docker image run on its own
served debug pages whose settings dump showed DATABASE_URL with its password."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.test import override_settings

from bench.loopback import free_port, wait_for_port
from tests.conftest import REPO_ROOT, database_url_for_tests, stop_processes


@contextmanager
def _serve(**overrides: str) -> Iterator[int]:
    """The platform under gunicorn as deployed: DEBUG unset unless given, a SECRET_KEY, the test database."""
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url_for_tests(),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SETTINGS_MODULE="mailplatform.settings",
        **overrides,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "mailplatform.wsgi:application"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, server, seconds=30)
        yield port
    finally:
        stop_processes([server])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, headers: dict[str, str] | None = None):
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        return opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10)
    except urllib.error.HTTPError as exc:
        return exc


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_app_started_without_debug_set_serves_no_debug_page():
    with _serve() as port:
        response = _get(f"http://127.0.0.1:{port}/no-such-page/")
        body = response.read().decode()
    assert response.code == 404
    assert "URLconf" not in body and "DEBUG = True" not in body


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_https_site_gets_hsts_secure_cookies_and_a_redirect_from_http():
    with _serve(SITE_URL="https://mail.example.com", ALLOWED_HOSTS="127.0.0.1") as port:
        plain = _get(f"http://127.0.0.1:{port}/login/")
        proxied = _get(f"http://127.0.0.1:{port}/login/", {"X-Forwarded-Proto": "https"})
    assert plain.code == 301 and plain.headers["Location"].startswith("https://")
    assert proxied.code == 200
    assert proxied.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    cookies = proxied.headers.get_all("Set-Cookie")
    assert cookies and all("Secure" in cookie for cookie in cookies)


SECRETS = {
    "DATABASE_URL": "postgresql://posthorn:db-password-1@db:5432/posthorn",
    "REDIS_URL": "redis://:redis-password-2@redis:6379/0",
    "CELERY_BROKER_URL": "redis://:redis-password-2@redis:6379/0",
    "ENCRYPTION_KEYS": ["fernet-key-3"],
    "MAILGUN_WEBHOOK_SIGNING_KEY": "signing-key-4",
    "ANYMAIL": {"WEBHOOK_SECRET": "user:webhook-secret-5"},
    "SMTP_RELAY_PASSWORD": "relay-password-6",
    "SOME_SERVICE_URL": "https://user:url-password-7@example.com/",
    "CACHES": {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "redis://:cache-password-8@redis:6379/1",
        }
    },
}


# Each secret above ends in "-<n>": found by pattern, so no source line the page quotes holds one.
HIDDEN = sorted(set(re.findall(r"[a-z]+-(?:password|key|secret)-\d", repr(SECRETS))))


def _fail() -> None:
    raise RuntimeError("boom")


def _error_page(rf) -> str:
    from django.views.debug import technical_500_response

    # The page quotes source lines around each frame: no secret is written near these lines.
    with override_settings(DEBUG=True, **SECRETS):
        try:
            _fail()
        except RuntimeError:
            response = technical_500_response(rf.get("/x/"), *sys.exc_info())
    return response.content.decode()


def test_error_reports_hide_every_credential(rf):
    """The debug page (and the mail to admins) show settings: none of these values may appear."""
    page = _error_page(rf)
    assert "boom" in page and "DATABASE_URL" in page  # it is the settings dump
    for secret in HIDDEN:
        assert secret not in page, f"{secret} is shown in an error report"
