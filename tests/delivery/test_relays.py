"""Relays and sending identities: encrypted credentials, the test button, admin-only pages."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from delivery import relays
from delivery.models import Relay, SendingIdentity
from mailplatform import crypto
from tests.delivery.smtp_servers import free_port

pytestmark = pytest.mark.django_db


def test_fresh_install_gets_the_capture_relay(settings):
    relay = relays.relay_ensure_default()
    assert (relay.host, relay.port, relay.security) == (
        settings.CAPTURE_SMTP_HOST,
        settings.CAPTURE_SMTP_PORT,
        "none",
    )
    assert relays.relay_ensure_default() is None  # only on a fresh install


def test_passwords_are_encrypted_never_shown_and_rotatable(settings, admin_client):
    relay = relays.relay_save(
        name="SES", host="email-smtp.example.com", port=587, username="AKIA", password="pa55word!"
    )
    stored = Relay.objects.get(pk=relay.pk).password_encrypted
    assert "pa55word" not in stored and relays.relay_password(relay) == "pa55word!"
    page = admin_client.get(reverse("delivery:relay-edit", args=[relay.pk])).content.decode()
    assert "pa55word" not in page and stored not in page
    # Port 587 suggested STARTTLS.
    assert relay.security == "starttls"
    # Rotation: a new key first, the old one still readable, then re-encrypted with the new one.
    old = settings.ENCRYPTION_KEYS
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, *old]
    assert crypto.rotate_all() == 1
    settings.ENCRYPTION_KEYS = [new_key]
    assert relays.relay_password(Relay.objects.get(pk=relay.pk)) == "pa55word!"
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretUnreadable):
        relays.relay_password(Relay.objects.get(pk=relay.pk))


def test_relay_form_saves_and_keeps_the_password_when_left_blank(admin_client):
    response = admin_client.post(
        reverse("delivery:relay-create"),
        {
            "name": "Main",
            "host": "smtp.example.com",
            "port": 465,
            "security": "",
            "verify_certificate": "on",
            "username": "u",
            "password": "secret-1",
            "max_connections": 3,
            "per_second": 10,
            "burst": 0,
            "per_hour": 0,
            "per_day": 1000,
            "weight": 100,
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    relay = Relay.objects.get(name="Main")
    assert relay.security == "tls" and relays.relay_password(relay) == "secret-1"
    admin_client.post(
        reverse("delivery:relay-edit", args=[relay.pk]),
        {
            "name": "Main",
            "host": "smtp.example.com",
            "port": 465,
            "security": "tls",
            "verify_certificate": "on",
            "username": "u",
            "password": "",
            "max_connections": 3,
            "per_second": 10,
            "burst": 0,
            "per_hour": 0,
            "per_day": 1000,
            "weight": 50,
            "enabled": "on",
        },
    )
    relay.refresh_from_db()
    assert relay.weight == 50 and relays.relay_password(relay) == "secret-1"


def test_relay_form_refuses_bad_input_with_the_field_named(admin_client):
    response = admin_client.post(
        reverse("delivery:relay-create"),
        {
            "name": "Bad",
            "host": "smtp.example.com\r\nX: y",
            "port": 70000,
            "max_connections": 0,
            "per_second": -1,
            "burst": 0,
            "per_hour": 0,
            "per_day": 0,
            "weight": 1,
        },
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert {"host", "port", "max_connections", "per_second"} <= set(form.errors)
    assert not Relay.objects.filter(name="Bad").exists()


def test_test_connection_reports_capabilities_or_the_failure(admin_client, sink, make_relay):
    relay = make_relay(sink)
    page = admin_client.post(reverse("delivery:relay-test", args=[relay.pk])).content.decode()
    assert "connected" in page and "PIPELINING" in page and "SIZE" in page
    dead = make_relay(port=free_port(), name="dead")
    page = admin_client.post(reverse("delivery:relay-test", args=[dead.pk])).content.decode()
    assert "failed" in page and "connection refused" in page
    dead.refresh_from_db()
    assert "connection refused" in dead.last_error


@pytest.mark.parametrize("name", ["delivery:relays", "delivery:relay-create", "delivery:relays-usage"])
def test_relay_pages_are_for_admins_only(marketer_client, developer_client, name):
    assert marketer_client.get(reverse(name)).status_code == 403
    assert developer_client.get(reverse(name)).status_code == 403


def test_relays_page_shows_health_and_usage(admin_client, make_relay, sink):
    relay = make_relay(sink, per_hour=100)
    relays.relay_record_failure(relay.pk, "421 4.7.0 slow down")
    page = admin_client.get(reverse("delivery:relays")).content.decode()
    assert relay.name in page and "backed off until" in page and "421 4.7.0 slow down" in page
    assert "/ 100" in page


def test_identities_with_dkim_record(admin_client):
    response = admin_client.post(
        reverse("delivery:identities"),
        {"address": "Example.COM", "generate_dkim": "on", "dkim_selector": "mail1"},
    )
    assert response.status_code == 302
    identity = SendingIdentity.objects.get()
    assert identity.address == "example.com" and identity.dkim_selector == "mail1"
    assert identity.dkim_dns_name == "mail1._domainkey.example.com"
    assert identity.dkim_dns_value.startswith("v=DKIM1; k=rsa; p=MII")
    page = admin_client.get(reverse("delivery:relays")).content.decode()
    assert "mail1._domainkey.example.com" in page and "BEGIN" not in page  # the private key never shows
    bad = admin_client.post(reverse("delivery:identities"), {"address": "not a domain"}, follow=True)
    assert "neither an email address nor a domain" in bad.content.decode()
