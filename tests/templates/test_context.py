"""The recipient context: plain data, the documented names, nothing else."""

import datetime
import decimal

import pytest

from templates.context import VARIABLE_HELP, recipient_context


def test_contact_fields_custom_fields_and_urls():
    context = recipient_context(
        contact={
            "email": "a@example.com",
            "first_name": "Ann",
            "fields": {"city": "Oslo", "first_name": "X"},
        },
        urls={"unsubscribe_url": "https://e.example/u/1", "preferences_url": "https://e.example/p/1"},
    )
    assert context["contact"] == {
        "email": "a@example.com",
        "first_name": "Ann",
        "last_name": "",
        "city": "Oslo",
    }
    assert context["unsubscribe_url"] == "https://e.example/u/1"
    assert context["view_in_browser_url"] == ""  # always defined, so templates can test it


def test_values_become_plain_data():
    class Model:
        def __str__(self):
            return "model"

    context = recipient_context(
        contact={
            "email": "a@example.com",
            "joined": datetime.date(2024, 5, 1),
            "balance": decimal.Decimal("1.50"),
            "owner": Model(),
            "tags": ("a", "b"),
        },
        urls={},
    )
    contact = context["contact"]
    assert contact["joined"] == "2024-05-01" and contact["balance"] == "1.50"
    assert contact["owner"] == "model" and contact["tags"] == ["a", "b"]


def test_extra_data_for_transactional_sends_and_reserved_names():
    context = recipient_context(
        contact={"email": "a@example.com"},
        urls={},
        extra={"order": {"number": 7, "items": [{"name": "Tea"}]}},
    )
    assert context["order"] == {"number": 7, "items": [{"name": "Tea"}]}
    with pytest.raises(ValueError, match="reserved"):
        recipient_context(contact={}, urls={}, extra={"contact": {"email": "spoof@example.com"}})
    with pytest.raises(ValueError, match="reserved"):
        recipient_context(contact={}, urls={}, extra={"unsubscribe_url": "https://evil.example"})


def test_every_documented_top_level_name_is_in_the_context():
    context = recipient_context(contact={"email": "a@example.com"}, urls={})
    for name, _ in VARIABLE_HELP:
        head = name.split(".")[0]
        if not head.startswith("<"):
            assert head in context
