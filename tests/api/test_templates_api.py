"""Templates over the API: versions on every save, compile errors naming the part, archive."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(api_client_for, developer_keys_may):
    developer_keys_may("templates:write")
    return api_client_for("developer", ["templates:read", "templates:write"])


def test_create_update_version_and_archive(editor):
    created = editor.post(
        "/api/v1/templates/",
        {"name": "Welcome", "subject": "Hi {{ contact.first_name }}", "html": "<p>Hello</p>"},
        format="json",
    )
    assert created.status_code == 201, created.content
    template = created.json()
    assert template["version"] == 1 and template["kind"] == "template"
    updated = editor.patch(
        f"/api/v1/templates/{template['id']}/", {"html": "<p>Hello again</p>", "note": "copy"}, format="json"
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2
    versions = editor.get(f"/api/v1/templates/{template['id']}/versions/").json()["results"]
    assert [v["number"] for v in versions] == [2, 1] and versions[0]["note"] == "copy"
    assert editor.delete(f"/api/v1/templates/{template['id']}/").status_code == 204
    assert editor.get("/api/v1/templates/").json()["results"] == []
    archived = editor.get("/api/v1/templates/?archived=true").json()["results"]
    assert [t["id"] for t in archived] == [template["id"]]
    restored = editor.patch(f"/api/v1/templates/{template['id']}/", {"archived": False}, format="json")
    assert restored.json()["archived"] is False and restored.json()["version"] == 2


def test_compile_errors_name_the_part_and_store_nothing(editor):
    from templates.models import EmailTemplate

    response = editor.post(
        "/api/v1/templates/", {"name": "Broken", "subject": "ok", "html": "<p>{% if x %}</p>"}, format="json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["errors"][0]
    assert error["field"] == "html" and "line 1" in error["message"]
    assert not EmailTemplate.objects.exists()


def test_unknown_layout_and_fields(editor):
    response = editor.post(
        "/api/v1/templates/", {"name": "x", "html": "<p/>", "layout": 987654}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "layout"
    response = editor.post(
        "/api/v1/templates/", {"name": "x", "html": "<p/>", "engine": "jinja"}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "engine"


def test_preview_for_a_contact(api_client_for):
    """The contact's merge data comes from contacts through mailplatform.lookups (no import)."""
    from templates.services import template_create

    template = template_create(
        name="Receipt",
        subject="Your order {{ order }}",
        html="<p>Hi {{ contact.first_name }}, order {{ order }}</p>",
    )
    # A preview with a contact's data reads the contact too (tests/security/test_smaller_holes.py).
    sender = api_client_for("developer", ["templates:read", "contacts:read"])
    from contacts.services import contact_create

    contact = contact_create(email="pre@example.com", first_name="Priya")
    response = sender.post(
        f"/api/v1/templates/{template.pk}/preview",
        {"contact": contact.pk, "data": {"order": "B-2"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subject"] == "Your order B-2" and "Hi Priya, order B-2" in body["html"]
    assert (
        sender.post(
            f"/api/v1/templates/{template.pk}/preview", {"contact": 987654}, format="json"
        ).status_code
        == 400
    )
    assert sender.post("/api/v1/templates/987654/preview", {}, format="json").status_code == 404
