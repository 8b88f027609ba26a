"""The dashboard import: upload, column mapping with preview, a real worker, progress, report."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import Contact, ContactImport, CustomField, MailingList, Subscription


def _upload(client, content: bytes, name="people.csv"):
    return client.post(reverse("contacts:imports"), {"file": SimpleUploadedFile(name, content, "text/csv")})


@pytest.mark.django_db
def test_upload_shows_preview_and_refuses_bad_files(marketer_client):
    response = _upload(
        marketer_client, b"Mail;Vorname;Punkte\nann@example.com;Ann;3\nbob@example.com;Bob;4\n"
    )
    contact_import = ContactImport.objects.get()
    assert response.url == reverse("contacts:import-detail", args=[contact_import.pk])
    assert contact_import.status == "draft"
    page = marketer_client.get(response.url).content.decode()
    assert "ann@example.com" in page and "Vorname" in page and "separator “;”" in page
    assert '<option value="email" selected>' in page
    bad = _upload(marketer_client, b"\x00\x01\x02binary" * 10, "x.csv")
    assert "looks binary" in bad.content.decode() and ContactImport.objects.count() == 1
    no_email = marketer_client.post(response.url, {"col0": "", "col1": "first_name", "mode": "upsert"})
    assert "Choose which column holds the email address" in no_email.content.decode()
    twice = marketer_client.post(response.url, {"col0": "email", "col1": "email", "mode": "upsert"})
    assert "Two columns are mapped to the same field" in twice.content.decode()
    contact_import.refresh_from_db()
    assert contact_import.status == "draft"


@pytest.mark.django_db
def test_developer_cannot_upload(developer_client):
    assert _upload(developer_client, b"email\na@example.com\n").status_code == 403


@pytest.mark.slow
def test_import_runs_on_a_worker_with_live_progress(celery_worker_process, client, make_user):
    client.force_login(make_user("marketer", "importer"))
    rows = "".join(f"user{i}@example.com,U{i},{i % 7}\n" for i in range(3000))
    content = ("email,first_name,visits\n" + rows + "broken@\nuser1@EXAMPLE.com,dup,1\n").encode()
    detail = _upload(client, content).url
    response = client.post(
        detail,
        {
            "col0": "email",
            "col1": "first_name",
            "col2": "attr:visits",
            "mode": "upsert",
            "new_list": "From CSV",
        },
    )
    assert response.status_code == 302
    contact_import = ContactImport.objects.get()
    assert contact_import.status in ("pending", "running", "done")
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fragment = client.get(reverse("contacts:import-progress", args=[contact_import.pk]))
        seen.append(fragment.content.decode())
        # The fragment tells the page to reload once the import has ended, and only then.
        if fragment.has_header("HX-Refresh"):
            assert fragment["HX-Refresh"] == "true"
            break
        time.sleep(0.2)
    contact_import.refresh_from_db()
    assert fragment.has_header("HX-Refresh")
    assert contact_import.status == "done", contact_import.error
    assert any('role="progressbar"' in s for s in seen)
    assert (
        contact_import.rows,
        contact_import.created,
        contact_import.invalid,
        contact_import.duplicates,
    ) == (3002, 3000, 1, 1)
    assert Contact.objects.count() == 3000
    assert CustomField.objects.get(name="visits").type == "text"
    from_csv = MailingList.objects.get(name="From CSV")
    assert Subscription.objects.filter(mailing_list=from_csv, status="confirmed").count() == 3000
    page = client.get(detail).content.decode()
    assert "Download bad rows" in page
    report = b"".join(
        client.get(reverse("contacts:import-report", args=[contact_import.pk])).streaming_content
    ).decode()
    assert "duplicate of row 3" in report and "broken@" in report
    from pathlib import Path

    assert not Path(contact_import.path).exists()  # the upload held personal data


@pytest.mark.django_db
def test_the_mapping_step_offers_to_drop_role_and_disposable_addresses(marketer_client):
    """Issue #16 item 8: the choice on the mapping step, default keep; dropped rows in the bad-rows CSV."""
    from contacts import services

    content = b"email\nann@example.org\npostmaster@example.org\nzed@yopmail.com\n"
    for drop, expected in ((False, 3), (True, 1)):
        Contact.objects.all().delete()
        detail = _upload(marketer_client, content).url
        page = marketer_client.get(detail).content.decode()
        assert 'name="drop_flagged"' in page and "Drop role and disposable addresses" in page
        data = {"col0": "email", "mode": "upsert", "new_list": "Mapped"}
        if drop:
            data["drop_flagged"] = "on"
        assert marketer_client.post(detail, data).status_code == 302
        contact_import = ContactImport.objects.order_by("-id").first()
        assert contact_import.drop_flagged is drop
        contact_import = services.contact_import_run(contact_import.pk)
        assert Contact.objects.count() == expected
        if drop:
            assert contact_import.invalid == 2
            report = marketer_client.get(reverse("contacts:import-report", args=[contact_import.pk]))
            text = b"".join(report.streaming_content if report.streaming else [report.content]).decode()
            assert "postmaster@example.org" in text and "a role address, dropped as asked" in text
            assert "zed@yopmail.com" in text and "a disposable address, dropped as asked" in text
