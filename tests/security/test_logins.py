"""Issue #12, logins: 30 wrong passwords on /admin/login/ and then the right one logged in (the lockout
guarded only /login/). Now Django admin has no login of its own, one throttle guards every form
that checks a password, it delays (per account and address) instead of locking an admin out, and
a password can be reset by mail through the transactional path."""

from __future__ import annotations

import ipaddress
import secrets
import time
import uuid

import pytest
from django.urls import reverse

RIGHT = "the right password 42"


def _address() -> str:
    # Every test its own client addresses (random, in the documentation prefix): the throttle's
    # counters live in Redis across tests and runs.
    return str(ipaddress.IPv6Address("2001:db8::") + secrets.randbits(64))


@pytest.fixture
def target(make_user):
    user = make_user("admin", f"boss-{uuid.uuid4().hex[:8]}", password=RIGHT)
    # Its own address too: the reset mail limit per address lives in Redis across runs.
    user.email = f"{user.username}@example.com"
    user.save()
    return user


def _login(client, username: str, password: str, address: str, url: str = "/login/", **extra):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def _logged_in(client) -> bool:
    return client.get(reverse("home")).status_code == 200


@pytest.mark.django_db
def test_admin_login_checks_no_password_so_guessing_there_gets_nowhere(client, target):
    address = _address()
    for _ in range(30):
        response = _login(client, target.username, "wrong guess", address, url="/admin/login/")
        assert response.status_code == 302 and response.url.startswith("/login/")
    response = _login(client, target.username, RIGHT, address, url="/admin/login/")
    assert response.status_code == 302 and response.url.startswith("/login/?next=")
    assert not _logged_in(client)
    assert client.get("/admin/").status_code == 302
    # Admin is reached through the dashboard's login.
    assert _login(client, target.username, RIGHT, address, url="/login/?next=/admin/").url == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_thirty_wrong_passwords_then_the_right_one_is_refused(client, target):
    address = _address()
    for _ in range(30):
        _login(client, target.username, "wrong guess", address)
    page = _login(client, target.username, RIGHT, address)
    assert page.status_code == 200 and "Too many failed logins" in page.content.decode()
    assert not _logged_in(client)


@pytest.mark.django_db
def test_an_attacker_elsewhere_cannot_lock_the_admin_out(client, target):
    attacker, admin = _address(), _address()
    for _ in range(30):
        _login(client, target.username, "wrong guess", attacker)
    assert _login(client, target.username, RIGHT, admin).status_code == 302
    assert _logged_in(client)


@pytest.mark.django_db
def test_the_delay_grows_and_then_passes(client, target, settings):
    settings.LOGIN_DELAY_SECONDS = 1
    settings.LOGIN_LOCKOUT_SECONDS = 2
    address = _address()
    for _ in range(settings.LOGIN_MAX_FAILURES):
        _login(client, target.username, "wrong guess", address)
    assert "Wait 1 seconds" in _login(client, target.username, RIGHT, address).content.decode()
    time.sleep(1.2)
    _login(client, target.username, "wrong again", address)  # one more failure: the delay doubles
    assert "Wait 2 seconds" in _login(client, target.username, RIGHT, address).content.decode()
    time.sleep(2.2)
    assert _login(client, target.username, RIGHT, address).status_code == 302


@pytest.mark.django_db
def test_the_client_address_comes_from_a_trusted_proxy_only(client, target, settings):
    """Behind a trusted proxy each client is throttled on its own; a spoofed header from anyone
    else changes nothing."""
    proxy = _address()
    victim_side, attacker_side = _address(), _address()
    settings.TRUSTED_PROXIES = [proxy]
    for _ in range(10):
        _login(
            client, target.username, "wrong guess", proxy, HTTP_X_FORWARDED_FOR=f"{attacker_side}, 10.9.9.9"
        )
    # The attacker's failures were counted against 10.9.9.9 (the hop the proxy saw), not the proxy.
    assert _login(client, target.username, RIGHT, proxy, HTTP_X_FORWARDED_FOR=victim_side).status_code == 302

    settings.TRUSTED_PROXIES = []
    client.logout()
    direct = _address()
    for _ in range(10):
        _login(client, target.username, "wrong guess", direct, HTTP_X_FORWARDED_FOR=_address())
    page = _login(client, target.username, RIGHT, direct, HTTP_X_FORWARDED_FOR=_address())
    assert "Too many failed logins" in page.content.decode()


@pytest.mark.django_db
def test_changing_a_password_is_throttled_too(client, target):
    client.force_login(target)
    address = _address()
    form = {"new_password1": "a new passphrase 77", "new_password2": "a new passphrase 77"}
    for _ in range(10):
        client.post(reverse("password_change"), {"old_password": "guess", **form}, REMOTE_ADDR=address)
    page = client.post(reverse("password_change"), {"old_password": RIGHT, **form}, REMOTE_ADDR=address)
    assert "Too many failed logins" in page.content.decode()
    target.refresh_from_db()
    assert target.check_password(RIGHT)


def _reset_messages(email: str):
    from delivery.models import Message

    return list(Message.objects.filter(email=email, mailing__meta__system="password_reset"))


@pytest.mark.django_db
def test_password_reset_mails_a_single_use_link_through_the_ledger(client, target):
    address = _address()
    response = client.post(reverse("password_reset"), {"email": target.email}, REMOTE_ADDR=address)
    assert response.status_code == 302 and response.url == reverse("password_reset_done")
    (message,) = _reset_messages(target.email)
    link = message.data["reset_url"]
    assert link.startswith("http")
    path = link.split("://", 1)[1].split("/", 1)[1]
    form_page = client.get("/" + path, follow=True)
    assert form_page.status_code == 200 and "Choose a new password" in form_page.content.decode()
    new = {"new_password1": "another passphrase 99", "new_password2": "another passphrase 99"}
    done = client.post(form_page.redirect_chain[-1][0], new)
    assert done.status_code == 302 and done.url == reverse("password_reset_complete")
    target.refresh_from_db()
    assert target.check_password("another passphrase 99")
    # The same link again: refused, nothing changes.
    again = client.get("/" + path, follow=True)
    assert "does not work" in again.content.decode()


@pytest.mark.django_db
def test_an_expired_reset_link_is_refused(client, target, settings):
    import datetime as dt

    from django.contrib.auth.tokens import PasswordResetTokenGenerator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    class Earlier(PasswordResetTokenGenerator):
        def _now(self):
            return super()._now() - dt.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)

    token = Earlier().make_token(target)
    uid = urlsafe_base64_encode(force_bytes(target.pk))
    page = client.get(reverse("password_reset_confirm", args=[uid, token]), follow=True)
    assert "does not work" in page.content.decode()


@pytest.mark.django_db
def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client, target):
    known = client.post(reverse("password_reset"), {"email": target.email}, REMOTE_ADDR=_address())
    unknown = client.post(reverse("password_reset"), {"email": "nobody@example.org"}, REMOTE_ADDR=_address())
    assert (known.status_code, known.url) == (unknown.status_code, unknown.url)
    assert not _reset_messages("nobody@example.org")
