"""Errors are RFC 9457 problems: 400 names the field, 413 for big bodies, 429 with Retry-After."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhooks/"


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("urn:posthorn:problem:")
    return body


def test_unknown_field_is_400_naming_it(api):
    body = _problem(
        api.post(
            URL, {"url": "https://example.com/h", "event_types": ["bounced"], "colour": 1}, format="json"
        ),
        400,
    )
    assert {"field": "colour", "message": "Unknown field."} in body["errors"]
    assert "colour" in body["detail"]


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"url": 5, "event_types": ["bounced"]}, "url"),
        ({"url": "https://example.com/h", "event_types": "bounced"}, "event_types"),
        ({"url": "https://example.com/h", "event_types": ["exploded"]}, "event_types[0]"),
        ({"url": "https://example.com/h", "event_types": ["bounced"], "description": ["x"]}, "description"),
    ],
)
def test_wrong_types_are_400_naming_the_field(api, payload, field):
    body = _problem(api.post(URL, payload, format="json"), 400)
    assert field in [e["field"] for e in body["errors"]], body


def test_a_json_array_where_an_object_belongs(api):
    body = _problem(api.post(URL, [1, 2], format="json"), 400)
    assert body["errors"][0]["message"]


def test_malformed_json_says_where(api):
    body = _problem(api.post(URL, data='{"url": ', content_type="application/json"), 400)
    assert "line 1 column" in body["detail"]


def test_nan_is_not_json(api):
    _problem(api.post(URL, data='{"url": NaN}', content_type="application/json"), 400)


@override_settings(API_MAX_BODY_BYTES=2048)
def test_oversized_body_is_413_by_content_length(api):
    payload = {"url": "https://example.com/h", "event_types": ["bounced"], "description": "x" * 5000}
    body = _problem(api.post(URL, payload, format="json"), 413)
    assert "2048" in body["detail"]


@override_settings(API_MAX_BODY_BYTES=2048)
def test_parser_stops_reading_at_the_limit():
    """A chunked body has no Content-Length for the middleware to refuse; the parser bounds the read."""
    from io import BytesIO

    from mailplatform.api.errors import PayloadTooLarge
    from mailplatform.api.parsers import BoundedJSONParser

    stream = BytesIO(json.dumps({"description": "x" * 100_000}).encode())
    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(stream)
    assert stream.tell() == 2049  # read one byte past the limit, no more
    assert BoundedJSONParser().parse(BytesIO(b'{"a": 1}')) == {"a": 1}


def test_unsupported_media_type(api):
    _problem(api.post(URL, data="url=x", content_type="text/plain"), 415)


def test_unknown_api_path_is_a_404_problem(api):
    body = _problem(api.get("/api/v1/no-such-thing/"), 404)
    assert body["instance"] == "/api/v1/no-such-thing/"


def test_a_missing_slash_is_pointed_out(api):
    body = _problem(api.get("/api/v1/webhooks"), 404)
    assert "Did you mean /api/v1/webhooks/ ?" in body["detail"]
    assert "Did you mean" not in _problem(api.get("/api/v1/nothing"), 404)["detail"]


def test_missing_object_is_404_problem(api):
    _problem(api.get("/api/v1/webhooks/999999/"), 404)


def test_method_not_allowed_is_problem(api):
    _problem(api.put("/api/v1/webhooks/", {}, format="json"), 405)


def test_403_without_scope_says_nothing_about_objects(api_client_for, api):
    created = api.post(URL, {"url": "https://example.com/h", "event_types": ["bounced"]}, format="json")
    assert created.status_code == 201, created.content
    existing = created.json()["id"]
    weak = api_client_for("developer", ["contacts:read"])
    a = _problem(weak.get(f"/api/v1/webhooks/{existing}/"), 403)
    b = _problem(weak.get("/api/v1/webhooks/987654/"), 403)
    assert a["detail"] == b["detail"] == "This API key lacks the scope `webhooks:manage`."
    assert "example.com" not in json.dumps(a)
    _problem(weak.delete(f"/api/v1/webhooks/{existing}/"), 403)
    assert api.get(f"/api/v1/webhooks/{existing}/").status_code == 200


def test_rate_limit_answers_429_with_retry_after(api_client_for):
    client = api_client_for("developer", ["webhooks:manage"], rate_limit_per_minute=3)
    responses = [client.get("/api/v1/key") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0]["RateLimit-Limit"] == "3"
    response = client.get("/api/v1/key")
    body = _problem(response, 429)
    assert int(response["Retry-After"]) >= 1 and "Retry after" in body["detail"]
    # Another key has its own bucket.
    assert (
        api_client_for("developer", ["webhooks:manage"], rate_limit_per_minute=3)
        .get("/api/v1/key")
        .status_code
        == 200
    )


def test_cursor_pagination(api):
    ids = [
        api.post(URL, {"url": f"https://example.com/{i}", "event_types": ["opened"]}, format="json").json()[
            "id"
        ]
        for i in range(5)
    ]
    seen, url = [], f"{URL}?limit=2"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 2
        seen += [item["id"] for item in page["results"]]
        url = page["next"]
    assert seen == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    "query,field",
    [("limit=0", "limit"), ("limit=abc", "limit"), ("limit=5000", "limit"), ("cursor=zzz", "cursor")],
)
def test_bad_pagination_parameters_are_400(api, query, field):
    body = _problem(api.get(f"{URL}?{query}"), 400)
    assert body["errors"][0]["field"] == field
