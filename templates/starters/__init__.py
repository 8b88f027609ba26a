"""Starter templates shipped with Posthorn: responsive, table-based, with the links every mail needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Starter:
    key: str
    name: str
    description: str
    subject: str
    preheader: str
    filename: str
    transactional: bool = False

    @property
    def html(self) -> str:
        return (_DIR / self.filename).read_text(encoding="utf-8")


STARTERS: dict[str, Starter] = {
    s.key: s
    for s in (
        Starter(
            "newsletter",
            "Newsletter",
            "Header, intro with a button, two stories, footer with preferences and unsubscribe.",
            '{{ contact.first_name | default: "Hello" }}, here is this month\'s news',
            "What happened this month, in two minutes.",
            "newsletter.html",
        ),
        Starter(
            "announcement",
            "Announcement",
            "A centred hero, a wide image and one call to action.",
            'Something new for you, {{ contact.first_name | default: "friend" }}',
            "The thing you asked for is here.",
            "announcement.html",
        ),
        Starter(
            "letter",
            "Personal letter",
            "Plain and personal: reads like a note from a person.",
            "A quick note",
            "",
            "letter.html",
        ),
        Starter(
            "receipt",
            "Receipt (transactional)",
            "Order lines in a loop over data passed with a transactional send (order.items).",
            "Your receipt for order {{ order.number }}",
            "",
            "receipt.html",
            transactional=True,
        ),
    )
}
