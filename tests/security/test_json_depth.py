"""Issue #12: `[` × 50,000 as a JSON body to the API gave a 500 (RecursionError); it is a clear 400."""

import pytest

from mailplatform import jsonlimits


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["[" * 50_000, '{"a":' * 50_000, "[" * 40 + "]" * 40])
def test_deeply_nested_json_body_is_a_400(api, body):
    from contacts.models import Contact

    response = api.generic("POST", "/api/v1/contacts/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert "nested more than" in response.json()["detail"]
    assert not Contact.objects.exists()


def test_ordinary_nesting_is_accepted():
    assert jsonlimits.loads('{"a": [[{"b": 1}]]}') == {"a": [[{"b": 1}]]}
    with pytest.raises(jsonlimits.JSONTooDeep):
        jsonlimits.loads("[" * 33 + "]" * 33)
    jsonlimits.loads("[" * 32 + "]" * 32)
