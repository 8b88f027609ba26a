"""Starter templates shipped with Posthorn: block documents (newsletter, announcement) and HTML
(letter, receipt), each with a thumbnail drawn as SVG from its blocks (no browser needed)."""

from __future__ import annotations

import json
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
    source_format: str = "html"
    # For HTML starters, what the thumbnail draws (block starters draw their own blocks).
    outline: tuple[str, ...] = ()

    @property
    def html(self) -> str:
        return (_DIR / self.filename).read_text(encoding="utf-8")

    @property
    def thumbnail(self) -> str:
        from templates.thumbnails import document_outline, thumbnail_svg

        if self.source_format == "blocks":
            outline = document_outline(json.loads(self.html))
        else:
            outline = [(kind, 2) for kind in self.outline]
        return thumbnail_svg(outline, label=f"{self.name} layout")


STARTERS: dict[str, Starter] = {
    s.key: s
    for s in (
        Starter(
            "newsletter",
            "Newsletter",
            "Blocks: intro with a button, two stories side by side, social links, footer.",
            '{{ contact.first_name | default: "Hello" }}, here is this month\'s news',
            "What happened this month, in two minutes.",
            "newsletter.json",
            source_format="blocks",
        ),
        Starter(
            "announcement",
            "Announcement",
            "Blocks: a centred heading, one call to action, three short benefits.",
            'Something new for you, {{ contact.first_name | default: "friend" }}',
            "The thing you asked for is here.",
            "announcement.json",
            source_format="blocks",
        ),
        Starter(
            "letter",
            "Personal letter",
            "Plain and personal: reads like a note from a person.",
            "A quick note",
            "",
            "letter.html",
            outline=("text", "text", "text", "text", "spacer", "footer"),
        ),
        Starter(
            "receipt",
            "Receipt (transactional)",
            "Order lines in a loop over data passed with a transactional send (order.items).",
            "Your receipt for order {{ order.number }}",
            "",
            "receipt.html",
            transactional=True,
            outline=("heading", "text", "divider", "columns", "columns", "divider", "text", "footer"),
        ),
        Starter(
            "confirmation",
            "Subscription confirmation (transactional)",
            "The double opt-in mail: a list's page can send this instead of the built-in one.",
            "Please confirm your subscription to {{ list_name }}",
            "One click and you are in.",
            "confirmation.html",
            transactional=True,
            outline=("text", "text", "button", "text"),
        ),
    )
}


BLANK_BODIES = {
    "blocks": json.dumps(
        {
            "blocks": [
                {"type": "heading", "text": 'Hello {{ contact.first_name | default: "there" }},', "level": 1},
                {"type": "footer", "address": "Your organisation\nStreet and number, postcode and town"},
            ]
        },
        indent=1,
    ),
    "mjml": """<mjml>
  <mj-body background-color="#f3f4f6">
    <mj-section background-color="#ffffff">
      <mj-column>
        <mj-text font-size="16px">Hi {{ contact.first_name | default: "there" }},</mj-text>
        <mj-text>Write your message here.</mj-text>
        <mj-text font-size="12px" color="#6b7280"><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
""",
    "markdown": """# Hi {{ contact.first_name | default: "there" }},

Write your message here: **bold**, *italic*, [links](https://example.com), lists.

[Unsubscribe]({{ unsubscribe_url }})
""",
}
