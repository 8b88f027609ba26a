"""The signed return path names one Message and refuses forgeries."""

import pytest
from django.test import override_settings

from delivery import verp


@override_settings(BOUNCE_DOMAIN="bounce.example.com")
def test_round_trip_and_shape():
    for message_id in (1, 36, 123456789, 2**40):
        address = verp.verp_address(message_id)
        local, domain = address.split("@")
        assert domain == "bounce.example.com"
        assert local.startswith("bounces+") and local == local.lower() and len(local) <= 30
        assert verp.message_id_from_address(address) == message_id
        # MTAs may change the case of the local part, or wrap it in angle brackets.
        assert verp.message_id_from_address(f"<{address.upper()}>") == message_id


def test_forged_or_foreign_tokens_are_refused():
    address = verp.verp_address(42)
    token = address.split("+", 1)[1].split("@")[0]
    number, mac = token.split("-")
    other = verp.verp_address(43).split("-")[1]
    assert verp.message_id_from_address(f"bounces+{number}-{other}") is None
    assert verp.message_id_from_address(f"bounces+{number}-{'a' * 8}@x") is None
    assert verp.message_id_from_address(f"bounces+{number}@x") is None
    assert verp.message_id_from_address("alice@example.com") is None
    assert verp.message_id_from_address("") is None
    # A bounce token is not an unsubscribe token.
    assert verp.message_id_from_unsubscribe_address(f"unsubscribe+{token}@x") is None
    assert verp.message_id_from_unsubscribe_address(verp.unsubscribe_address(42)) == 42


def test_another_secret_key_invalidates_tokens(settings):
    address = verp.verp_address(7)
    settings.SECRET_KEY = "another-secret-key-that-is-long-enough-for-django"
    assert verp.message_id_from_address(address) is None


@pytest.mark.parametrize("bad", [-1])
def test_negative_ids_are_refused(bad):
    with pytest.raises(ValueError):
        verp.verp_address(bad)
