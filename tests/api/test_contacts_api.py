"""Contacts over the API: the same services as the dashboard, with field-named errors."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer(api_client_for, developer_keys_may):
    developer_keys_may("contacts:write")
    return api_client_for("developer", ["contacts:read", "contacts:write"])


@pytest.fixture
def newsletter(writer):
    response = writer.post("/api/v1/lists/", {"name": "Newsletter", "opt_in": "single"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_read_update_erase(writer, newsletter):
    created = writer.post(
        "/api/v1/contacts/",
        {
            "email": "Ann@Example.com",
            "first_name": "Ann",
            "attributes": {"plan": "pro"},
            "lists": [newsletter["id"]],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    contact = created.json()
    assert contact["email"] == "Ann@example.com" and contact["attributes"] == {"plan": "pro"}
    assert contact["subscriptions"][0]["list"] == newsletter["id"]
    assert contact["subscriptions"][0]["status"] == "confirmed"
    assert contact["consent_source"] == "api"

    again = writer.post("/api/v1/contacts/", {"email": "ann@example.com"}, format="json")
    assert again.status_code == 409

    patched = writer.patch(f"/api/v1/contacts/{contact['id']}/", {"last_name": "Lee"}, format="json")
    assert patched.status_code == 200 and patched.json()["last_name"] == "Lee"
    assert patched.json()["first_name"] == "Ann"

    found = writer.get("/api/v1/contacts/lookup?email=ANN@example.com")
    assert found.status_code == 200 and found.json()["id"] == contact["id"]

    exported = writer.get(f"/api/v1/contacts/{contact['id']}/export").json()
    assert exported["email"] == "Ann@example.com" and exported["subscriptions"][0]["list"] == "Newsletter"

    assert writer.delete(f"/api/v1/contacts/{contact['id']}/").status_code == 204
    assert writer.get(f"/api/v1/contacts/{contact['id']}/").status_code == 404


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": 42}, "email"),
        ({"email": "a@example.com", "lists": "1"}, "lists"),
        ({"email": "a@example.com", "lists": [987654]}, "lists"),
        ({"email": "a@example.com", "nickname": "x"}, "nickname"),
        ({"email": "a@example.com", "attributes": []}, "attributes"),
    ],
)
def test_bad_contact_input_names_the_field(writer, payload, field):
    response = writer.post("/api/v1/contacts/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in [e["field"] for e in response.json()["errors"]]


def test_list_search_and_cursor_pages(writer):
    for i in range(7):
        assert (
            writer.post("/api/v1/contacts/", {"email": f"p{i}@example.com"}, format="json").status_code == 201
        )
    writer.post("/api/v1/contacts/", {"email": "zed@other.org"}, format="json")
    seen, url = [], "/api/v1/contacts/?search=@example.com&limit=3"
    while url:
        page = writer.get(url)
        assert page.status_code == 200, page.content
        body = page.json()
        seen += [c["email"] for c in body["results"]]
        url = body["next"]
    assert seen == [f"p{i}@example.com" for i in reversed(range(7))]
    second = writer.get("/api/v1/contacts/?search=@example.com&limit=3").json()["next"]
    back = writer.get(writer.get(second).json()["previous"]).json()
    assert [c["email"] for c in back["results"]] == ["p6@example.com", "p5@example.com", "p4@example.com"]
    assert writer.get("/api/v1/contacts/?status=nope").status_code == 400
    assert writer.get("/api/v1/contacts/?cursor=bogus").status_code == 400


def test_unsubscribe_and_resubscribe_rules(writer, newsletter):
    contact = writer.post(
        "/api/v1/contacts/", {"email": "u@example.com", "lists": [newsletter["id"]]}, format="json"
    ).json()
    left = writer.post(
        f"/api/v1/contacts/{contact['id']}/unsubscribe", {"lists": [newsletter["id"]]}, format="json"
    )
    assert left.status_code == 200 and left.json() == {"lists_left": 1}
    again = writer.post(
        f"/api/v1/contacts/{contact['id']}/subscriptions/", {"list": newsletter["id"]}, format="json"
    )
    assert again.status_code == 201 and again.json()["status"] == "confirmed"
    writer.post(f"/api/v1/contacts/{contact['id']}/unsubscribe", {}, format="json")
    assert writer.get(f"/api/v1/contacts/{contact['id']}/").json()["status"] == "unsubscribed"
    # A global opt-out is the person's decision: the API cannot subscribe them back.
    refused = writer.post(
        f"/api/v1/contacts/{contact['id']}/subscriptions/", {"list": newsletter["id"]}, format="json"
    )
    assert refused.status_code == 409


def test_bulk_upsert_reports_bad_rows_by_index(writer, newsletter):
    writer.post("/api/v1/contacts/", {"email": "old@example.com", "first_name": "Old"}, format="json")
    rows = [
        {"email": "old@example.com", "first_name": "Renamed"},
        {"email": "new1@example.com", "attributes": {"score": 3}},
        {"email": "broken"},
        {"email": "new2@example.com", "last_name": "Two"},
        {"email": "new1@example.com"},
    ]
    response = writer.post(
        "/api/v1/contacts/bulk", {"contacts": rows, "lists": [newsletter["id"]]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] == 2 and body["updated"] == 1 and body["invalid"] == 1 and body["duplicates"] == 1
    assert [e["index"] for e in body["errors"]] == [2, 4]
    assert body["errors"][0]["email"] == "broken"
    members = writer.get(f"/api/v1/lists/{newsletter['id']}/members/").json()["results"]
    assert {m["email"] for m in members} == {"old@example.com", "new1@example.com", "new2@example.com"}
    renamed = writer.get("/api/v1/contacts/lookup?email=old@example.com").json()
    assert renamed["first_name"] == "Renamed"


def test_bulk_upsert_parses_and_merges_with_the_cycle_collector_paused(writer, monkeypatch):
    """10,000 parsed rows made the collector run full collections of the whole process's heap;
    the call runs without it, and leaves it on as it found it."""
    import gc

    from contacts import api

    real, seen = api.contacts_bulk_upsert, []

    def watched(rows, **kwargs):
        seen.append(gc.isenabled())
        return real(rows, **kwargs)

    monkeypatch.setattr(api, "contacts_bulk_upsert", watched)
    rows = [{"email": f"r{i}@example.com"} for i in range(3)]
    assert gc.isenabled()
    response = writer.post("/api/v1/contacts/bulk", {"contacts": rows}, format="json")
    assert response.status_code == 200 and response.json()["created"] == 3
    assert seen == [False] and gc.isenabled()
    bad = writer.post("/api/v1/contacts/bulk", {"contacts": [{"email": 5}]}, format="json")
    assert bad.status_code == 400 and gc.isenabled()


def test_bulk_shape_errors_fail_whole_request_naming_row_and_field(writer):
    from contacts.models import Contact

    rows = [{"email": "ok@example.com"}, {"email": "x@example.com", "colour": "red"}, {"email": 5}]
    response = writer.post("/api/v1/contacts/bulk", {"contacts": rows}, format="json")
    assert response.status_code == 400
    fields = [e["field"] for e in response.json()["errors"]]
    assert "contacts[1].colour" in fields and "contacts[2].email" in fields
    assert not Contact.objects.exists()


def test_bulk_limit_is_ten_thousand(writer):
    rows = [{"email": f"r{i}@example.com"} for i in range(10_001)]
    response = writer.post("/api/v1/contacts/bulk", {"contacts": rows}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "contacts"


def test_segments_count_and_members(writer, newsletter):
    for email in ("a@vip.com", "b@vip.com", "c@other.com"):
        writer.post("/api/v1/contacts/", {"email": email}, format="json")
    rules = {
        "match": "all",
        "groups": [
            {"match": "all", "conditions": [{"field": "email", "op": "ends_with", "value": "@vip.com"}]}
        ],
    }
    created = writer.post("/api/v1/segments/", {"name": "VIP", "rules": rules}, format="json")
    assert created.status_code == 201, created.content
    segment = created.json()
    assert writer.get(f"/api/v1/segments/{segment['id']}/count").json() == {"count": 2}
    members = writer.get(f"/api/v1/segments/{segment['id']}/members/").json()["results"]
    assert sorted(m["email"] for m in members) == ["a@vip.com", "b@vip.com"]
    bad = writer.post(
        "/api/v1/segments/",
        {
            "name": "Bad",
            "rules": {
                "match": "all",
                "groups": [{"conditions": [{"field": "nope", "op": "eq", "value": 1}]}],
            },
        },
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "rules"


def test_suppressions(writer):
    created = writer.post(
        "/api/v1/suppressions/", {"value": "@spamtrap.example", "reason": "trap"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "domain"
    assert writer.post("/api/v1/suppressions/", {"value": "not valid!"}, format="json").status_code == 400
    listed = writer.get("/api/v1/suppressions/").json()["results"]
    assert [s["value"] for s in listed] == ["spamtrap.example"]
    assert writer.delete(f"/api/v1/suppressions/{listed[0]['id']}/").status_code == 204


def test_import_upload_status_and_error_report(writer, newsletter, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from contacts import services

    settings.MEDIA_ROOT = tmp_path
    csv_bytes = b"email,first_name\nimp1@example.com,One\nnot-an-address,Bad\nimp2@example.com,Two\n"
    upload = SimpleUploadedFile("people.csv", csv_bytes, content_type="text/csv")
    response = writer.post(
        "/api/v1/imports/", {"file": upload, "lists": str(newsletter["id"])}, format="multipart"
    )
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] == "pending" and job["lists"] == [newsletter["id"]]
    services.contact_import_run(job["id"])  # what the worker does
    done = writer.get(f"/api/v1/imports/{job['id']}/").json()
    assert (
        done["status"] == "done"
        and done["created"] == 2
        and done["invalid"] == 1
        and done["has_error_report"]
    )
    report = writer.get(f"/api/v1/imports/{job['id']}/errors")
    assert report.status_code == 200 and report["Content-Type"].startswith("text/csv")
    text = b"".join(report.streaming_content).decode()
    assert "not-an-address" in text and "3," in text


def test_read_scope_cannot_write(api_client_for):
    reader = api_client_for("developer", ["contacts:read"])
    assert reader.get("/api/v1/contacts/").status_code == 200
    response = reader.post("/api/v1/contacts/", {"email": "x@example.com"}, format="json")
    assert response.status_code == 403 and "contacts:write" in response.json()["detail"]


def test_fast_contact_json_matches_the_documented_serializer(writer):
    from django.utils import timezone

    from contacts.models import Contact
    from contacts.serializers import ContactSerializer, contact_json
    from contacts.services import contact_record_open

    created = writer.post(
        "/api/v1/contacts/", {"email": "same@example.com", "attributes": {"n": 1}}, format="json"
    )
    contact_record_open(created.json()["id"], timezone.now())
    contact = Contact.objects.get(email="same@example.com")
    assert contact.last_opened_at is not None
    assert contact_json(contact) == dict(ContactSerializer(contact).data)


def test_language_and_timezone_are_checked_shown_and_changed(writer):
    """Contacts' standard attributes (tests/contacts/test_language_timezone.py has the rest)."""
    from contacts.models import Contact

    api = writer
    bad = api.post(
        "/api/v1/contacts/",
        {"email": "q@example.com", "timezone": "Mars/Base", "language": "x"},
        format="json",
    )
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"timezone", "language"}
    made = api.post("/api/v1/contacts/", {"email": "q@example.com", "language": "de-ch"}, format="json")
    assert made.status_code == 201 and made.json()["language"] == "de-CH" and made.json()["timezone"] == ""
    pk = made.json()["id"]
    changed = api.patch(f"/api/v1/contacts/{pk}/", {"timezone": "Europe/Zurich"}, format="json")
    assert changed.json()["timezone"] == "Europe/Zurich" and changed.json()["language"] == "de-CH"
    listed = api.get("/api/v1/contacts/").json()["results"]
    assert (listed[0]["language"], listed[0]["timezone"]) == ("de-CH", "Europe/Zurich")
    bulk = api.post(
        "/api/v1/contacts/bulk",
        {
            "contacts": [
                {"email": "r@example.com", "language": "it", "timezone": "Europe/Rome"},
                {"email": "s@example.com", "timezone": "Atlantis/Capital"},
            ]
        },
        format="json",
    )
    assert bulk.status_code == 200 and bulk.json()["created"] == 1
    assert bulk.json()["errors"][0]["index"] == 1 and "timezone" in bulk.json()["errors"][0]["message"]
    assert Contact.objects.get(email="r@example.com").timezone == "Europe/Rome"
