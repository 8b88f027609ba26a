"""The Bounces pages: log with filters and chart, policy, mailboxes, evidence; who may do what."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from delivery.bounces.mailboxes import mailbox_password
from delivery.bounces.models import BounceEvent, BounceMailbox, BouncePolicy
from delivery.bounces.services import bounce_process
from mailplatform.models import AuditEntry

SAMPLES = Path(__file__).parent / "samples"
pytestmark = pytest.mark.django_db


@pytest.fixture
def some_bounces() -> None:
    for name in ("exim-text.eml", "dsn-two-recipients-mixed.eml", "arf-abuse.eml"):
        bounce_process((SAMPLES / name).read_bytes(), source="pipe")


def test_log_lists_filters_and_charts(marketer_client, some_bounces) -> None:
    page = marketer_client.get("/bounces/").content.decode()
    assert "gone@example.com" in page and "blocked@example.com" in page and "angry@example.com" in page
    assert page.count('class="bar-bounces"') == 30
    filtered = marketer_client.get("/bounces/", {"kind": "block"}).content.decode()
    assert "blocked@example.com" in filtered and "gone@example.com" not in filtered
    searched = marketer_client.get("/bounces/", {"q": "quota"}).content.decode()
    assert "full@example.com" in searched and "gone@example.com" not in searched
    assert 'href="/bounces/policy/"' not in page  # marketers do not manage the policy


def test_event_detail_escapes_hostile_diagnostics(marketer_client) -> None:
    raw = (SAMPLES / "exim-text.eml").read_bytes().replace(b"No such user here", b"<script>alert(1)</script>")
    bounce_process(raw, source="pipe")
    event = BounceEvent.objects.get()
    page = marketer_client.get(f"/bounces/events/{event.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert marketer_client.get(f"/bounces/events/{event.pk}/raw").status_code == 403


def test_admin_downloads_the_raw_evidence(admin_client, some_bounces) -> None:
    event = BounceEvent.objects.filter(recipient="gone@example.com").get()
    response = admin_client.get(f"/bounces/events/{event.pk}/raw")
    assert response.status_code == 200 and b"qmail" not in response.content
    assert response.content == (SAMPLES / "exim-text.eml").read_bytes()
    assert response["Content-Disposition"].startswith("attachment")


def test_marketers_may_not_change_the_policy_or_mailboxes(marketer_client) -> None:
    assert marketer_client.get("/bounces/policy/").status_code == 403
    assert marketer_client.post("/bounces/policy/", {"soft_bounce_threshold": 1}).status_code == 403
    assert marketer_client.get("/bounces/mailboxes/").status_code == 403
    assert BouncePolicy.current().soft_bounce_threshold == 3


def test_policy_is_validated_and_audited(admin_client) -> None:
    bad = admin_client.post(
        "/bounces/policy/",
        {
            "soft_bounce_threshold": 0,
            "soft_bounce_window_days": 30,
            "block_alert_threshold": 5,
            "keep_raw_days": 90,
        },
    )
    assert bad.status_code == 200 and "Between 1 and 100" in bad.content.decode()
    assert BouncePolicy.current().soft_bounce_threshold == 3
    good = admin_client.post(
        "/bounces/policy/",
        {
            "soft_bounce_threshold": 5,
            "soft_bounce_window_days": 14,
            "block_alert_threshold": 5,
            "keep_raw_days": 90,
        },
    )
    assert good.status_code == 302
    policy = BouncePolicy.current()
    assert (policy.soft_bounce_threshold, policy.soft_bounce_window_days) == (5, 14)
    assert AuditEntry.objects.filter(action="bounces.policy_updated").exists()


def test_mailbox_form_encrypts_and_never_shows_the_password(admin_client) -> None:
    data = {
        "name": "bounces",
        "protocol": "imap",
        "host": "imap.example.net",
        "port": 993,
        "security": "tls",
        "verify_certificate": "on",
        "username": "bounces",
        "folder": "INBOX",
        "max_per_poll": 100,
        "enabled": "on",
    }
    missing = admin_client.post("/bounces/mailboxes/new/", data)
    assert "needs its password" in missing.content.decode()
    bad_host = admin_client.post("/bounces/mailboxes/new/", {**data, "host": "imap://x/", "password": "pw"})
    assert "without scheme or path" in bad_host.content.decode()
    assert (
        admin_client.post("/bounces/mailboxes/new/", {**data, "password": "s3cret-pass"}).status_code == 302
    )
    mailbox = BounceMailbox.objects.get()
    assert "s3cret-pass" not in mailbox.password_encrypted and mailbox_password(mailbox) == "s3cret-pass"
    edit = admin_client.get(f"/bounces/mailboxes/{mailbox.pk}/").content.decode()
    assert "s3cret-pass" not in edit and mailbox.password_encrypted not in edit
    admin_client.post(f"/bounces/mailboxes/{mailbox.pk}/", {**data, "port": 1993})  # keeps the password
    mailbox.refresh_from_db()
    assert mailbox.port == 1993 and mailbox_password(mailbox) == "s3cret-pass"


def test_poll_now_reports_a_connection_error(admin_client) -> None:
    mailbox = BounceMailbox.objects.create(
        name="dead", host="127.0.0.1", port=1, security="none", username="x"
    )
    response = admin_client.post(f"/bounces/mailboxes/{mailbox.pk}/poll", follow=True)
    assert "dead:" in response.content.decode()
    mailbox.refresh_from_db()
    assert mailbox.last_error and mailbox.last_polled_at
    assert admin_client.get(f"/bounces/mailboxes/{mailbox.pk}/poll").status_code == 405


def test_home_fragment_shows_the_week(marketer_client, some_bounces) -> None:
    fragment = marketer_client.get("/bounces/home-fragment/").content.decode()
    assert "1 hard" in fragment and "1 complaint" in fragment


def test_an_unattributed_report_is_on_the_bounces_page_with_why_and_changes_no_contact(
    marketer_client,
) -> None:
    from contacts.services import contact_create

    contact = contact_create(email="gone@example.com")
    bounce_process((Path(__file__).parent / "samples" / "exim-text.eml").read_bytes(), source="pipe")
    event = BounceEvent.objects.get()
    assert event.contact_id is None
    page = marketer_client.get(reverse("bounces:index")).content.decode()
    assert "gone@example.com" in page and "unattributed: no signed return-path token or Message-ID" in page
    html = marketer_client.get(reverse("delivery:contact-timeline", args=[contact.pk])).content.decode()
    assert "matched by address" not in html


def test_mailbox_passwords_rotate_with_the_platform_keys(settings, capsys) -> None:
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from delivery.bounces.mailboxes import mailbox_set_password
    from mailplatform import crypto

    mailbox = BounceMailbox(name="b", host="imap.example.com", username="u")
    mailbox_set_password(mailbox, "pw-1")
    mailbox.save()
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, *settings.ENCRYPTION_KEYS]
    call_command("rotate_keys")
    assert "re-encrypted 1 secrets" in capsys.readouterr().out
    settings.ENCRYPTION_KEYS = [new_key]  # the old key removed: still readable
    assert mailbox_password(BounceMailbox.objects.get(pk=mailbox.pk)) == "pw-1"
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretUnreadable):
        mailbox_password(BounceMailbox.objects.get(pk=mailbox.pk))


def test_the_migration_moves_stored_mailbox_passwords_to_the_delivery_keys() -> None:
    from importlib import import_module

    from django.apps import apps

    migration = import_module("delivery.bounces.migrations.0002_mailbox_passwords_under_delivery_keys")
    old = migration._old_fernet().encrypt(b"legacy-pw").decode()
    mailbox = BounceMailbox.objects.create(
        name="old", host="imap.example.com", username="u", password_encrypted=old
    )
    migration.reencrypt(apps, None)
    mailbox.refresh_from_db()
    assert mailbox.password_encrypted != old and mailbox_password(mailbox) == "legacy-pw"
