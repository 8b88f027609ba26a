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


def _reference_token(message_id: int, purpose: str, secret: str) -> str:
    """The scheme as first written (hmac.new, base64's base32): mail already out carries these."""
    import base64
    import hashlib
    import hmac

    key = hashlib.sha256(f"posthorn-verp:{purpose}:".encode() + secret.encode()).digest()
    mac = base64.b32encode(hmac.new(key, str(message_id).encode(), hashlib.sha256).digest()[:5])
    return f"{verp.base36(message_id)}-{mac.decode().lower()}"


@pytest.mark.parametrize("secret", ["a-secret-key-that-is-long-enough-for-django-0123", "k" * 200])
def test_tokens_are_the_same_bytes_as_the_reference_hmac(settings, secret):
    """The precomputed-pad HMAC and the batch call mint exactly the tokens hmac.new did, whatever
    the key's length (longer than the block: hashed first), so links and return paths in mail
    already sent stay valid."""
    import random

    settings.SECRET_KEY = secret
    ids = [0, 1, 35, 36, 2**40, *random.Random(7).sample(range(1, 2**62), 2000)]
    for purpose in ("bounce", "unsubscribe", "message-id"):
        batch = verp.message_tokens(ids, purpose)
        for message_id in ids:
            expected = _reference_token(message_id, purpose, secret)
            assert verp.message_token(message_id, purpose) == expected == batch[message_id]
    assert verp.verp_addresses([5]) == {5: verp.verp_address(5).encode()}
    with pytest.raises(ValueError):
        verp.message_tokens([3, -1])
