"""The fast address check agrees with email-validator; typed values convert or say why not."""

import pytest
from email_validator import EmailNotValidError, validate_email

from contacts.validation import EmailError, _fast, check_email, coerce_value

SAMPLES = [
    "plain@example.com",
    "Mixed.Case@Example.COM",
    "o'brien+tag@sub.example.co.uk",
    "a@b.co",
    "x@localhost",
    "x@example.test",
    "x@example.invalid",
    "x@192.168.0.1",
    "x@[192.168.0.1]",
    "x@example.c",
    "x@example.123",
    "x@-bad.com",
    "x@bad-.com",
    "x@xn--bcher-kva.example",
    "x@exa_mple.com",
    ".x@example.com",
    "x.@example.com",
    "x..y@example.com",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "x@" + "a" * 63 + ".com",
    "x@" + "a" * 64 + ".com",
    "x@" + ".".join(["abcdefghi"] * 25) + ".com",
    "zoë@example.com",
    "x@bücher.example",
    '"quoted"@example.com',
    "x@example.com.",
    "x@@example.com",
    "x y@example.com",
    "x@example..com",
    "user@example.onion",
    "user@in-addr.arpa",
    "x@a---b.com",
    "x@ab--cd.example.com",
    "x@abc--d.example.com",
    "x@Example.TEST",
    "x@sub.LocalHost",
    "x@example.xlocal",
    "x@example.Onion",
    "UPPER@EXAMPLE.COM",
]


# Every combination of these parts: the one pattern of the fast path must still never accept what
# email-validator refuses, nor normalise differently.
LOCALS = ["a", "A.b", "a" * 64, "a" * 65, "a..b", "-x-", "o'k+t", "x y", ""]
DOMAINS = [
    "example.com", "EXAMPLE.Com", "a-b.co", "a--b.com", "xn--p1ai.ru", "ab--cd.com", "a---b.com",
    "x.test", "x.TEST", "x.tests", "localhost", "x.localhost", "x.local", "x.arpa", "x.invalid",
    "x.c", "x.c1", "-a.com", "a-.com", "a" * 63 + ".com", "a" * 64 + ".com", ".".join(["b" * 60] * 4) + ".com",
]  # fmt: skip


@pytest.mark.parametrize("domain", DOMAINS)
def test_fast_path_pattern_agrees_over_combinations(domain):
    for local in LOCALS:
        address = f"{local}@{domain}"
        expected = _reference(address)
        fast = _fast(address)
        if fast is not None:
            assert fast == expected, address


def _reference(address):
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


@pytest.mark.parametrize("address", SAMPLES)
def test_fast_path_never_disagrees_with_email_validator(address):
    expected = _reference(address)
    fast = _fast(address)
    if fast is not None:
        assert fast == expected  # accepted by the fast path only when the library agrees
    try:
        got = check_email(address)
    except EmailError:
        got = None
    assert got == expected


def test_errors_say_why():
    with pytest.raises(EmailError, match="empty"):
        check_email("   ")
    with pytest.raises(EmailError, match="@"):
        check_email("no-at-sign")


@pytest.mark.parametrize(
    "kind,raw,expected",
    [
        ("number", "42", 42),
        ("number", "1,234.5", 1234.5),
        ("number", "", None),
        ("boolean", "Yes", True),
        ("boolean", "0", False),
        ("date", "2024-02-29", "2024-02-29"),
        ("date", "2024-02-29T10:00:00", "2024-02-29"),
        ("text", "  keep spaces ", "  keep spaces "),
    ],
)
def test_coerce_value(kind, raw, expected):
    assert coerce_value(kind, raw) == expected


@pytest.mark.parametrize(
    "kind,raw,message",
    [
        ("number", "12abc", "not a number"),
        ("number", "inf", "finite"),
        ("boolean", "maybe", "yes/no"),
        ("date", "2023-02-29", "not a date"),
    ],
)
def test_coerce_value_refuses(kind, raw, message):
    with pytest.raises(ValueError, match=message):
        coerce_value(kind, raw)
