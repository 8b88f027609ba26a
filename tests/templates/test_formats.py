"""MJML, Markdown and block documents compile on the server into the same Liquid pipeline."""

from __future__ import annotations

import json

import pytest

from templates.blocks import BlockError, blocks_to_mjml, parse_document
from templates.compiler import TemplateError, compile_template
from templates.context import sample_context
from templates.formats import FormatError, switch_format

FOOTER = {"type": "footer", "address": "Posthorn Ltd\n1 Harbour Road, Leith"}


def newsletter(**extra) -> dict:
    return {
        "blocks": [
            {"type": "heading", "text": 'Hello {{ contact.first_name | default: "there" }}'},
            {
                "type": "text",
                "text": "This is **bold** and <b>not html</b>, [a link](https://example.com/a?x=1&y=2).",
            },
            {"type": "image", "src": "https://cdn.example.com/a.png", "alt": "A picture"},
            {"type": "button", "label": "Shop now", "href": "https://shop.example.com/"},
            {
                "type": "columns",
                "columns": [{"heading": "Left", "text": "One"}, {"heading": "Right", "text": "Two"}],
            },
            {"type": "divider"},
            {"type": "spacer", "height": 30},
            {"type": "social", "instagram": "https://instagram.com/posthorn"},
            dict(FOOTER),
        ],
        **extra,
    }


def test_a_block_document_compiles_to_mail_html_with_the_fast_path():
    compiled = compile_template(subject="News", html=json.dumps(newsletter()), source_format="blocks")
    assert not compiled.uses_logic  # merge fields only: the fast path still applies
    mail = compiled.render(sample_context())
    assert "Hello Ada" in mail.html and "<strong>bold</strong>" in mail.html
    assert "&lt;b&gt;not html&lt;/b&gt;" in mail.html  # raw HTML in a text block is text
    assert 'href="https://example.com/a?x=1&amp;y=2"' in mail.html
    assert "Shop now" in mail.html and "cdn.example.com/a.png" in mail.html
    assert "1 Harbour Road, Leith" in mail.html and "https://example.com/u/sample-unsubscribe" in mail.html
    assert "instagram.png" in mail.html
    assert "Left" in mail.text and "Shop now" in mail.text


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["blocks"].pop(), "add a footer block"),
        (
            lambda d: d["blocks"][3].update(href="javascript:alert(1)"),
            "block 4 \\(button\\): the link must start",
        ),
        (lambda d: d["blocks"][2].update(src='https://x/"onerror="x'), "block 3 \\(image\\)"),
        (lambda d: d["blocks"][4]["columns"].pop(), "two or three columns"),
        (lambda d: d["blocks"].append({"type": "script"}), "unknown block type"),
        (lambda d: d["blocks"][8].update(address=" "), "postal address is required"),
        (lambda d: d["blocks"][6].update(height=10_000), "between 4 and 200"),
    ],
)
def test_bad_blocks_are_refused_naming_the_block(change, message):
    document = newsletter()
    change(document)
    with pytest.raises(BlockError, match=message):
        parse_document(json.dumps(document))
    with pytest.raises(TemplateError, match=message):
        compile_template(subject="s", html=json.dumps(document), source_format="blocks")


def test_liquid_in_attributes_cannot_break_out():
    document = {
        "blocks": [{"type": "button", "label": "<b>", "href": '{{ order.url | default: "x" }}'}, dict(FOOTER)]
    }
    mjml = blocks_to_mjml(parse_document(document))
    assert "href=\"{{ order.url | default: 'x' }}\"" in mjml and "&lt;b&gt;" in mjml


def test_mjml_mode_and_its_errors():
    source = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ contact.first_name }}</mj-text>"
        '<mj-button href="{{ unsubscribe_url }}">Unsubscribe</mj-button></mj-column></mj-section></mj-body></mjml>'
    )
    compiled = compile_template(subject="s", html=source, source_format="mjml")
    assert "Hi Ada" in compiled.render(sample_context()).html and not compiled.uses_logic
    with pytest.raises(TemplateError, match="MJML could not be compiled"):
        compile_template(subject="s", html="<mjml><mj-body><mj-section>", source_format="mjml")
    with pytest.raises(TemplateError, match="cannot go into a base layout"):
        compile_template(
            subject="s", html=source, source_format="mjml", layout_html="<div>{{ content }}</div>"
        )


def test_markdown_mode_inside_a_layout_or_the_built_in_frame():
    source = '# Hi {{ contact.first_name | default: "you" }}\n\n[Unsubscribe]({{ unsubscribe_url }})\n'
    framed = compile_template(subject="s", html=source, source_format="markdown").render(sample_context())
    assert "<h1>Hi Ada</h1>" in framed.html and 'class="frame"' in framed.html
    assert 'href="https://example.com/u/sample-unsubscribe' in framed.html
    layout = '<div class="mine">{{ content }}</div>'
    inside = compile_template(subject="s", html=source, source_format="markdown", layout_html=layout)
    assert 'class="mine"' in inside.render(sample_context()).html


def test_switching_formats_only_where_nothing_is_lost():
    blocks = json.dumps(newsletter())
    mjml = switch_format("blocks", blocks, "mjml")
    assert mjml.startswith("<mjml>")
    assert "Shop now" in switch_format("mjml", mjml, "html")
    assert "<h1>Hi</h1>" in switch_format("markdown", "# Hi", "html")
    for source_format, source, target in [
        ("html", "<p>Hi</p>", "blocks"),
        ("html", "<p>Hi</p>", "mjml"),
        ("mjml", mjml, "blocks"),
        ("markdown", "# Hi", "blocks"),
    ]:
        with pytest.raises(FormatError, match="without losing content"):
            switch_format(source_format, source, target)
    assert switch_format("html", "  ", "blocks") == '{"blocks": []}'  # nothing to lose
