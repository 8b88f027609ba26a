import uuid

import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_login_and_logout(client, make_user):
    make_user("marketer", "lena", password="a long enough secret")
    response = client.post(reverse("login"), {"username": "lena", "password": "a long enough secret"})
    assert response.status_code == 302 and response.url == reverse("home")
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


@pytest.mark.django_db
def test_repeated_failures_lock_the_account_even_with_the_right_password(client, make_user, settings):
    username = f"target-{uuid.uuid4().hex[:8]}"
    make_user("marketer", username, password="the right password")
    # An address of its own: the throttle's per-address counter lives in Redis across runs.
    address = f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
    for _ in range(settings.LOGIN_MAX_FAILURES):
        page = client.post(
            reverse("login"), {"username": username, "password": "wrong guess"}, REMOTE_ADDR=address
        )
        assert page.status_code == 200
    page = client.post(
        reverse("login"), {"username": username, "password": "the right password"}, REMOTE_ADDR=address
    )
    assert page.status_code == 200
    assert "Too many failed logins" in page.content.decode()


@pytest.mark.django_db
def test_login_next_cannot_redirect_off_site(client, make_user):
    make_user("marketer", "nina", password="a long enough secret")
    response = client.post(
        reverse("login") + "?next=https://evil.example/",
        {"username": "nina", "password": "a long enough secret", "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response.url == reverse("home")


@pytest.mark.django_db
def test_password_change(client, make_user):
    user = make_user("developer", "pat", password="old password here")
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "old password here",
            "new_password1": "brand new passphrase 42",
            "new_password2": "brand new passphrase 42",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("brand new passphrase 42")
