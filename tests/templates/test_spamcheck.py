"""The SpamAssassin pre-send check: the real `spamassassin -L` where installed (CI installs it)."""

from __future__ import annotations

import os
from email.message import EmailMessage

import pytest

from templates import spamcheck

REQUIRED = os.environ.get("POSTHORN_REQUIRE_SPAMASSASSIN") == "1"


@pytest.fixture
def spamassassin():
    if spamcheck.spamassassin_path() is None:
        if REQUIRED:
            pytest.fail("spamassassin is not installed but CI requires it (.ci/run installs it)")
        pytest.skip(
            "spamassassin is not installed (apt-get install spamassassin): the pre-send check cannot run"
        )


SAMPLE = """Content analysis details:   (6.3 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
-0.0 NO_RELAYS              Informational: message was not relayed via SMTP
 0.1 MIME_HTML_ONLY         BODY: Message only has text/html MIME parts
 3.2 SOME_VERY_LONG_RULE_NAME_X BODY: a description that is long enough to be
                            wrapped onto a second line
 1.0 SUBJ_ALL_CAPS          Subject is all capitals

"""


def test_the_report_is_read_into_rules_in_plain_words() -> None:
    score, required, rules = spamcheck.parse_report(SAMPLE)
    assert (score, required) == (6.3, 5.0)
    assert [r.name for r in rules] == [
        "SOME_VERY_LONG_RULE_NAME_X",
        "SUBJ_ALL_CAPS",
        "MIME_HTML_ONLY",
        "NO_RELAYS",
    ]
    long_rule = rules[0]
    assert long_rule.plain == "A description that is long enough to be wrapped onto a second line"
    assert rules[1].plain == "The subject is written in capitals."
    assert rules[3].plain == "Message was not relayed via SMTP"


def _message(subject: str, html: str, text: str | None) -> bytes:
    message = EmailMessage()
    message["From"] = "Shop <news@shop.example.com>"
    message["To"] = "Ada <ada@example.org>"
    message["Subject"] = subject
    message["Date"] = "Sun, 06 Dec 2026 01:00:00 +0000"
    message["Message-ID"] = "<campaign-1-preview.0123456789@bounces.shop.example.com>"
    if text is None:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def test_spamassassin_scores_a_spammy_message_higher_and_says_why(spamassassin, settings) -> None:
    spammy = _message(
        "FREE MONEY!!! ACT NOW",
        '<html><body><p style="color:#fff;background:#fff">hidden</p><a href="http://bit.ly/x">'
        "CLICK HERE NOW</a></body></html>",
        None,
    )
    plain = _message(
        "Our spring collection",
        "<html><body><p>Hello Ada, our spring collection is in the shop, with three new coats "
        "and a linen shirt we think you will like.</p></body></html>",
        "Hello Ada, our spring collection is in the shop, with three new coats and a linen shirt "
        "we think you will like.",
    )
    bad, good = spamcheck.spam_check(spammy), spamcheck.spam_check(plain)
    assert bad.available and not bad.error and not good.error
    assert bad.score > good.score
    fired = {r.name for r in bad.rules}
    assert "MIME_HTML_ONLY" in fired
    assert any(
        r.plain == "The message has only an HTML part: give it a plain-text version too." for r in bad.rules
    )
    assert "MIME_HTML_ONLY" not in {r.name for r in good.rules}
    # the same message again is read from the cache, not scored twice
    assert spamcheck.spam_check(spammy) == bad


def test_without_spamassassin_the_check_says_so(monkeypatch) -> None:
    monkeypatch.setattr(spamcheck, "spamassassin_path", lambda: None)
    report = spamcheck.spam_check(b"Subject: x\n\nhello\n")
    assert not report.available and "not installed" in report.error
