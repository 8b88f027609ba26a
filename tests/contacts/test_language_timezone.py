"""Language and time zone: contacts' standard attributes, checked everywhere a contact is written."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from contacts.imports import run_import
from contacts.models import Contact, MailingList, Subscription
from contacts.selectors import contact_merge_data
from mailplatform.env import ConfigError, env_checked
from mailplatform.locales import check_language, check_timezone

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("en", "en"),
        ("EN_us", "en-US"),
        ("pt-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
    ],
)
def test_language_tags_come_back_in_canonical_case(raw, tag):
    assert check_language(raw) == tag


@pytest.mark.parametrize("raw", ["", "e", "english", "en-", "en--US", "de-CH-x-private", "a" * 40, "en US"])
def test_anything_else_is_not_a_language(raw):
    with pytest.raises(ValueError):
        check_language(raw)


def test_time_zones_are_iana_names():
    assert check_timezone("europe/berlin") == "Europe/Berlin"
    assert check_timezone(" UTC ") == "UTC"
    for bad in ("", "Mars/Olympus", "localtime", "posixrules", "+02:00", "CEST"):
        with pytest.raises(ValueError):
            check_timezone(bad)


def test_the_install_defaults_are_checked_at_start_up(monkeypatch):
    monkeypatch.setenv("DEFAULT_TIMEZONE", "Europe/Atlantis")
    with pytest.raises(ConfigError, match="DEFAULT_TIMEZONE='Europe/Atlantis'"):
        env_checked("DEFAULT_TIMEZONE", "UTC", check_timezone)
    monkeypatch.setenv("DEFAULT_LANGUAGE", "de_ch")
    assert env_checked("DEFAULT_LANGUAGE", "en", check_language) == "de-CH"


def test_an_empty_value_means_the_install_default(settings):
    settings.DEFAULT_LANGUAGE, settings.DEFAULT_TIMEZONE = "de", "Europe/Berlin"
    plain = Contact.objects.create(email="plain@example.com")
    own = Contact.objects.create(email="own@example.com", language="fr", timezone="America/Montreal")
    assert (plain.effective_language, plain.effective_timezone) == ("de", "Europe/Berlin")
    data = contact_merge_data([plain.pk, own.pk])
    assert (data[plain.pk]["language"], data[plain.pk]["timezone"]) == ("de", "Europe/Berlin")
    assert (data[own.pk]["language"], data[own.pk]["timezone"]) == ("fr", "America/Montreal")


def test_dashboard_create_and_edit_check_them_on_their_field(admin_client):
    url = reverse("contacts:create")
    bad = admin_client.post(
        url, {"email": "z@example.com", "language": "klingon!", "timezone": "Nowhere/Zone"}
    )
    assert bad.status_code == 200
    assert "language" in bad.context["form"].errors and "timezone" in bad.context["form"].errors
    assert not Contact.objects.filter(email="z@example.com").exists()
    created = admin_client.post(
        url, {"email": "z@example.com", "language": "pt_br", "timezone": "asia/tokyo"}
    )
    assert created.status_code == 302
    contact = Contact.objects.get(email="z@example.com")
    assert (contact.language, contact.timezone) == ("pt-BR", "Asia/Tokyo")
    edit = reverse("contacts:detail", args=[contact.pk])
    admin_client.post(edit, {"status": "active", "language": "", "timezone": "Europe/Paris"})
    contact.refresh_from_db()
    assert (contact.language, contact.timezone) == ("", "Europe/Paris")


def test_import_reads_checks_and_merges_them(tmp_path):
    Contact.objects.create(email="kept@example.com", language="fr", timezone="Europe/Paris")
    path = tmp_path / "in.csv"
    path.write_text(
        "email,lang,tz\n"
        "new@example.com,en_gb,europe/london\n"
        "kept@example.com,,\n"
        "bad-zone@example.com,de,Berlin\n"
        "bad-lang@example.com,german,UTC\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"
    result = run_import(path, mode="upsert", report_path=report)
    assert (result.created, result.unchanged, result.invalid) == (1, 1, 2)
    new = Contact.objects.get(email="new@example.com")
    assert (new.language, new.timezone) == ("en-GB", "Europe/London")
    kept = Contact.objects.get(email="kept@example.com")
    assert (kept.language, kept.timezone) == ("fr", "Europe/Paris")  # an empty cell keeps the value
    reasons = {row["email"]: row["import problem"] for row in csv.DictReader(report.open(encoding="utf-8"))}
    assert reasons["bad-zone@example.com"].startswith("timezone:")
    assert reasons["bad-lang@example.com"].startswith("language:")


def test_export_carries_them(admin_client):
    news = MailingList.objects.create(name="News")
    contact = Contact.objects.create(email="a@example.com", language="nl", timezone="Europe/Amsterdam")
    Subscription.objects.create(contact=contact, mailing_list=news, status="confirmed")
    response = admin_client.get(reverse("contacts:list-export", args=[news.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert (rows[0]["language"], rows[0]["timezone"]) == ("nl", "Europe/Amsterdam")
    gdpr = admin_client.get(reverse("contacts:contact-export", args=[contact.pk])).json()
    assert (gdpr["language"], gdpr["timezone"]) == ("nl", "Europe/Amsterdam")
