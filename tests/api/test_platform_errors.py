"""One error type, mapped once for the API (RFC 9457) and once for the dashboard (form fields)."""

from __future__ import annotations

import pytest
from django import forms

from mailplatform.api.errors import platform_problem
from mailplatform.errors import Conflict, Invalid, PlatformError, Unavailable, form_error, model_checked

pytestmark = pytest.mark.django_db


def test_the_api_answers_a_service_refusal_as_a_problem_document(api_client_for, developer_keys_may):
    developer_keys_may("contacts:write")
    api = api_client_for("developer", ["contacts:read", "contacts:write"])
    assert api.post("/api/v1/contacts/", {"email": "dup@example.com"}, format="json").status_code == 201
    again = api.post("/api/v1/contacts/", {"email": "DUP@example.com"}, format="json")
    assert again.status_code == 409 and again["Content-Type"] == "application/problem+json"
    body = again.json()
    assert body["type"] == "urn:posthorn:problem:conflict" and body["status"] == 409
    assert (body["code"], body["field"], body["retryable"]) == ("contact_exists", "email", False)
    assert "already exists" in body["detail"]
    bad = api.post("/api/v1/suppressions/", {"value": "not a thing"}, format="json").json()
    # A 400 keeps the documented validation shape: `errors` lists each field.
    assert bad["type"] == "urn:posthorn:problem:validation_error" and bad["status"] == 400
    assert bad["errors"][0]["field"] == "value" and bad["code"] == "invalid_suppression"


def test_status_code_and_retry_come_from_the_error():
    body, status = platform_problem(Unavailable("the relay pool did not answer", code="relays_down"), "/x")
    assert status == 503 and body["retryable"] is True and body["code"] == "relays_down"
    assert body["type"] == "urn:posthorn:problem:unavailable" and body["instance"] == "/x"
    body, status = platform_problem(Conflict("already sending", code="state"))
    assert status == 409 and body["retryable"] is False and "field" not in body
    several = Conflict("a; b", code="problems", messages=["a", "b"])
    assert several.messages == ["a", "b"] and str(several) == "a; b"


def test_every_app_error_is_the_platform_error():
    from contacts.imports import ImportFileError
    from contacts.segments import SegmentError
    from contacts.validation import EmailError
    from media.services import MediaError
    from templates.compiler import TemplateError
    from templates.formats import FormatError

    for kind in (EmailError, ImportFileError, SegmentError, TemplateError, FormatError, MediaError):
        assert issubclass(kind, PlatformError) and issubclass(kind, ValueError)
    error = TemplateError("unknown tag 'fi'", part="subject", line=1, column=4)
    assert (error.field, error.code, error.status) == ("subject", "template_error", 400)
    assert (
        str(error) == "subject at line 1, column 4: unknown tag 'fi'" and error.message == "unknown tag 'fi'"
    )
    assert EmailError("bad").field == "email"


class _Form(forms.Form):
    name = forms.CharField()
    email = forms.CharField()


def test_the_dashboard_puts_the_error_on_its_field():
    form = _Form({"name": "n", "email": "e"})
    assert form.is_valid()
    form_error(form, Invalid("taken", field="email"))
    form_error(form, Invalid("the whole thing is off", field="not_on_this_form"))
    assert form.errors["email"] == ["taken"] and form.non_field_errors() == ["the whole thing is off"]


def test_model_checks_name_each_bad_field():
    from delivery.models import Relay

    relay = Relay(name="", host="", port=587)
    with pytest.raises(Invalid) as caught:
        model_checked(relay)
    fields = {field for field, _ in caught.value.errors}
    assert {"name", "host"} <= fields
