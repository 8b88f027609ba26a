"""Bounce reading beyond the corpus (issue #21): hand-made reports in the forms older MTAs and
webmail services send, in several languages. None of these messages is from the shared corpus,
so the rules are tried on wording they were not tuned on."""

from __future__ import annotations

import pytest

from delivery.bounces.classifier import classify


def _read(raw: str) -> list[tuple[str, str, str]]:
    return [(r.address, r.kind, r.reason) for r in classify(raw.encode()).recipients]


def _dsn(records: str, human: str = "Delivery failed.") -> str:
    return (
        "From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail Returned to Sender\n"
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{human}\n\n--B\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.example.org\n\n{records}\n--B--\n"
    )


# --- Original-Recipient ---


def test_original_recipient_is_the_address_we_sent_to_not_the_alias_it_became() -> None:
    records = (
        "Final-Recipient: rfc822; mbox.4711@store.example.net\n"
        "Original-Recipient: rfc822; Ann.Lee@example.com\n"
        "Action: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 mailbox full\n"
    )
    assert _read(_dsn(records)) == [("ann.lee@example.com", "soft", "mailboxfull")]


def test_an_original_recipient_that_is_no_mail_address_is_passed_over() -> None:
    records = (
        "Original-Recipient: x400; /G=Ann/S=Lee/O=Example/\n"
        "Final-Recipient: rfc822; ann@example.com\n"
        "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n"
    )
    assert _read(_dsn(records)) == [("ann@example.com", "hard", "userunknown")]


# --- Old Sendmail: prose only, one summary line per recipient ---

V5_SENDMAIL = """From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>
To: news@sender.example
Subject: Returned mail: User unknown

   ----- Transcript of session follows -----
While talking to mx.alpha.example:
>>> RCPT To:<ann@alpha.example>
<<< 550 No such mailbox here
550 <ann@alpha.example>... User unknown
550 beta.example (smtp)... 550 Host unknown
554 <bob@beta.example>... 550 Host unknown (Authoritative answer from name server)
While talking to mx.gamma.example:
>>> DATA
<<< 554 Message refused: content rejected
554 <cyd@gamma.example>... Service unavailable

   ----- Unsent message follows -----
From: news@sender.example
To: dee@delta.example
"""


def test_old_sendmail_prose_gives_every_recipient_in_order_with_its_own_reason() -> None:
    assert _read(V5_SENDMAIL) == [
        ("ann@alpha.example", "hard", "userunknown"),  # refused in reply to its RCPT TO
        ("bob@beta.example", "hard", "hostunknown"),
        ("cyd@gamma.example", "block", "spamdetected"),  # the remote's reply, not Sendmail's summary
    ]


# --- Which command did the refusal answer? ---


def _transcript(replies: str) -> str:
    return (
        "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>\n"
        "Subject: Returned mail: see transcript for details\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n<eve@epsilon.example>\n\n"
        "   ----- Transcript of session follows -----\n... while talking to mx.epsilon.example.:\n"
        f">>> DATA\n{replies}\n"
    )


def test_a_pipelined_rcpt_refusal_labelled_data_is_still_a_rcpt_refusal() -> None:
    # PIPELINING: RCPT TO and DATA go in one write, so Sendmail labels the RCPT's reply ">>> DATA";
    # the DATA's own reply ("no valid recipients") comes after it.
    pipelined = _transcript(
        "<<< 550 <eve@epsilon.example>... Mailbox does not exist\n"
        "550 5.1.1 <eve@epsilon.example>... User unknown\n<<< 554 5.5.1 Error: no valid recipients"
    )
    assert _read(pipelined) == [("eve@epsilon.example", "hard", "userunknown")]
    # one reply to DATA: the message was refused, and "unknown" may be a content filter talking
    after_data = _transcript(
        "<<< 550 <eve@epsilon.example>... Mailbox does not exist\n550 <eve@epsilon.example>... User unknown"
    )
    assert _read(after_data) == [("eve@epsilon.example", "soft", "filtered")]


# --- Prose in other languages ---

WEBMAIL = """From: Mail Delivery Subsystem <mailer-daemon@{host}>
To: news@sender.example
Subject: {subject}
Content-Type: text/plain; charset=utf-8

{body}
"""


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        (
            "Unzustellbar: Ihre Bestellung",
            "Ihre Nachricht konnte nicht an folgende Empfänger zugestellt werden:\n\n"
            "    max.mustermann@beispiel.de\n    Grund: Der Benutzer ist unbekannt.\n\n"
            "--- Originalnachricht ---\nTo: someone.else@beispiel.de\n",
            # no code and no SMTP phase: not proof that the mailbox is gone
            ("max.mustermann@beispiel.de", "soft", "filtered"),
        ),
        (
            "Échec de la remise",
            "Adresse introuvable\n\nVotre message n'a pas été distribué à jean.dupont@exemple.fr, car "
            "l'adresse est introuvable ou ne peut pas recevoir d'e-mails.",
            # the webmail service's own directory lookup, in its own words
            ("jean.dupont@exemple.fr", "hard", "userunknown"),
        ),
        (
            "Mensaje no entregado",
            "No se ha podido entregar su mensaje al destinatario:\n\n"
            "<lucia@ejemplo.es>: el buzón de correo está lleno. Inténtelo más tarde.",
            ("lucia@ejemplo.es", "soft", "mailboxfull"),
        ),
        (
            "Mancato recapito",
            "Non è stato possibile recapitare il messaggio a mario.rossi@esempio.it:\nla casella di posta è piena.",
            ("mario.rossi@esempio.it", "soft", "mailboxfull"),
        ),
        (
            "Mensagem não entregue",
            "Não foi possível entregar a mensagem para joao@exemplo.com.br: 550 5.1.1 usuário desconhecido",
            ("joao@exemplo.com.br", "hard", "userunknown"),
        ),
        (
            "Недоставленное сообщение",
            "Ваше сообщение не может быть доставлено следующим адресатам:\n\n"
            "ivan@primer.ru: 550 5.1.1 пользователь не найден",
            ("ivan@primer.ru", "hard", "userunknown"),
        ),
        (
            "配信エラー",
            "以下の宛先にメールを配信できませんでした。\n\ntaro@example.ne.jp\n理由: 宛先不明",
            ("taro@example.ne.jp", "soft", "filtered"),
        ),
        (
            "Onbestelbaar bericht",
            "Uw bericht kon niet worden bezorgd aan piet@voorbeeld.nl: de ontvanger is onbekend "
            "(in reply to RCPT TO command)",
            ("piet@voorbeeld.nl", "hard", "userunknown"),
        ),
    ],
    ids=["de", "fr-webmail", "es", "it", "pt", "ru", "ja", "nl"],
)
def test_prose_bounces_in_other_languages(subject: str, body: str, expected: tuple[str, str, str]) -> None:
    assert _read(WEBMAIL.format(host="mx.example.net", subject=subject, body=body)) == [expected]


# --- Proof, and its absence ---


def test_a_report_whose_words_say_the_mailbox_exists_is_no_proof_that_it_does_not() -> None:
    records = (
        "Final-Recipient: rfc822; kim@example.com\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <kim@example.com>... User unknown\n"
    )
    contradicted = _dsn(records, human="Your message to <kim> was refused: the mailbox is full.")
    assert _read(contradicted) == [("kim@example.com", "soft", "mailboxfull")]
    assert _read(_dsn(records)) == [("kim@example.com", "hard", "userunknown")]


@pytest.mark.parametrize(
    ("action", "kind"),
    [("failed", "hard"), ("delayed", "delayed")],
)
def test_an_unknown_user_given_up_on_after_soft_rejections_is_hard(action: str, kind: str) -> None:
    records = (
        f"Final-Recipient: rfc822; lou@example.com\nAction: {action}\nStatus: 4.1.1\n"
        "Diagnostic-Code: smtp; 450 4.1.1 <lou@example.com>: Recipient address rejected: User unknown\n"
    )
    assert _read(_dsn(records))[0][1] == kind


def test_a_bare_number_in_the_details_is_not_the_reply_code() -> None:
    raw = WEBMAIL.format(
        host="mms.example.com",
        subject="Returned mail",
        body="Error: Invalid user address\n\nError message below:\n550 - Requested action not taken: "
        "no such user here\n\nMessage details:\n  RCPT TO: pat@example.com\n  Size (in bytes): 252\n",
    )
    (found,) = classify(raw.encode()).recipients
    assert (found.address, found.reply_code, found.reason) == ("pat@example.com", "550", "filtered")
    assert found.diagnostic.startswith("550 - Requested action not taken")
