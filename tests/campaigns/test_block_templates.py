"""A campaign on a block template sends the blocks' HTML and the template's attachments."""

from __future__ import annotations

import pytest

from campaigns import selectors
from campaigns.services import campaign_create
from templates import services as template_services
from templates.starters import STARTERS

pytestmark = pytest.mark.django_db


def test_campaign_snapshot_of_a_block_template_with_an_attachment(make_audience):
    starter = STARTERS["newsletter"]
    template = template_services.template_create(
        name="News", subject=starter.subject, html=starter.html, source_format="blocks"
    )
    template_services.template_attach(template.pk, data=b"%PDF list", filename="list.pdf")
    campaign = campaign_create(name="News", template=template, lists=[make_audience(2)])
    compiled, rendered = selectors.compiled_for(campaign)
    assert "A story worth telling" in rendered.html and '"blocks"' not in rendered.html
    assert [a["filename"] for a in compiled.to_dict()["attachments"]] == ["list.pdf"]
