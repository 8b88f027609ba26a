"""Compiling and rendering: the fast path fills slots exactly as Liquid would."""

import json

import pytest

from templates.compiler import CompiledTemplate, RenderedEmail, TemplateError, compile_template
from templates.context import recipient_context

HTML = """<html><head><style>p { color: #333 } .big { font-size: 20px }</style></head>
<body><p class="big">Hello {{ contact.first_name | default: "there" }}</p>
<p>Your city: {{ contact.city }}</p>
<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>"""


def _context(**contact):
    return recipient_context(
        contact={"email": "a@example.com", **contact},
        urls={"unsubscribe_url": "https://example.com/u/abc?x=1&y=2"},
    )


def test_merge_field_template_uses_the_fast_path_and_matches_liquid():
    compiled = compile_template(subject="Hi {{ contact.first_name }}", html=HTML)
    assert not compiled.uses_logic
    assert compiled.fields == {"contact.first_name", "contact.city", "unsubscribe_url"}
    context = _context(first_name="<b>Bob</b>", city="Zürich & Co")
    fast = compiled.render(context)
    assert isinstance(fast, RenderedEmail)
    assert fast == compiled.render_liquid(context)
    assert "Hello &lt;b&gt;Bob&lt;/b&gt;" in fast.html
    assert "Zürich &amp; Co" in fast.html
    assert 'href="https://example.com/u/abc?x=1&amp;y=2"' in fast.html
    assert "Hello <b>Bob</b>" in fast.text and "Zürich & Co" in fast.text
    assert fast.subject == "Hi <b>Bob</b>"


def test_default_applies_to_missing_and_empty_values_but_not_zero():
    compiled = compile_template(subject='Hi {{ contact.first_name | default: "there" }}', html=HTML)
    assert compiled.render(_context()).subject == "Hi there"
    assert compiled.render(_context(first_name="")).subject == "Hi there"
    assert compiled.render(_context(first_name=0)).subject == "Hi 0"
    for ctx in (_context(), _context(first_name=""), _context(first_name=0), _context(first_name=None)):
        assert compiled.render(ctx) == compiled.render_liquid(ctx)


def test_css_is_inlined_and_style_tag_kept_for_media_queries():
    compiled = compile_template(subject="s", html=HTML)
    assert '<p class="big" style="color: #333;font-size: 20px;">' in compiled.html
    assert "<style>" in compiled.html


def test_text_part_is_derived_from_html_when_none_given():
    compiled = compile_template(subject="s", html=HTML)
    assert 'Hello {{ contact.first_name | default: "there" }}' in compiled.text
    assert "<p" not in compiled.text
    rendered = compiled.render(_context(first_name="Ann"))
    assert "Hello Ann" in rendered.text
    assert "https://example.com/u/abc?x=1&y=2" in rendered.text


def test_written_text_part_is_kept():
    compiled = compile_template(subject="s", html=HTML, text="Plain {{ contact.first_name }}")
    assert compiled.render(_context(first_name="Ann")).text == "Plain Ann"


def test_logic_renders_through_liquid():
    compiled = compile_template(
        subject="s",
        html="<p>{% if contact.vip %}VIP{% else %}Hi{% endif %} {% for i in contact.items %}[{{ i }}]{% endfor %}</p>",
    )
    assert compiled.uses_logic
    rendered = compiled.render(_context(vip=True, items=["a", "<b>"]))
    assert "VIP [a][&lt;b&gt;]" in rendered.html
    assert "VIP [a][<b>]" in rendered.text


def test_liquid_inside_tables_survives_css_inlining():
    html = "<table>{% for row in contact.rows %}<tr><td>{{ row }}</td></tr>{% endfor %}</table>"
    compiled = compile_template(subject="s", html=html)
    rendered = compiled.render(_context(rows=["one", "two"]))
    assert "<tr><td>one</td></tr><tr><td>two</td></tr>" in rendered.html
    assert "<tbody>" not in rendered.html  # the source's structure is kept as written
    assert rendered.text.split() == ["one", "two"]


def test_preheader_is_hidden_at_the_top_of_the_body():
    compiled = compile_template(subject="s", html=HTML, preheader="Sale for {{ contact.first_name }}")
    rendered = compiled.render(_context(first_name="Ann"))
    body = rendered.html.split("<body>", 1)[1]
    assert body.startswith('<div style="display:none')
    assert "Sale for Ann" in body
    assert "Sale for" not in rendered.text


def test_subject_never_contains_line_breaks():
    compiled = compile_template(subject="Hi {{ contact.first_name }}", html=HTML)
    evil = "Bob\r\nBcc: victim@example.com\nX: y\u2028z"
    for rendered in (
        compiled.render(_context(first_name=evil)),
        compiled.render_liquid(_context(first_name=evil)),
    ):
        assert (
            "\r" not in rendered.subject and "\n" not in rendered.subject and "\u2028" not in rendered.subject
        )
        assert "Bcc: victim@example.com" in rendered.subject  # visible as text, not a header
    logic = compile_template(subject="{% if true %}Hi {{ contact.first_name }}{% endif %}", html=HTML)
    assert "\n" not in logic.render(_context(first_name=evil)).subject


def test_subject_with_a_line_break_is_refused():
    with pytest.raises(TemplateError) as info:
        compile_template(subject="Hi\nBcc: x@example.com", html=HTML)
    assert info.value.part == "subject"


@pytest.mark.parametrize(
    ("kwargs", "part", "line", "column"),
    [
        ({"subject": "Hi {{ contact.first_name ", "html": HTML}, "subject", 1, None),
        ({"subject": "s", "html": "<p>one</p>\n<p>two {% if %}</p>"}, "html", 2, 11),
        (
            {"subject": "s", "html": "<p>one</p>\n{% if x %}\n<p>two</p>"},
            "html",
            2,
            1,
        ),  # the unclosed {% if %}, not the end
        ({"subject": "s", "html": "<p>x</p>", "text": "a\nb\n{{ x | nosuchfilter }}"}, "text", 3, 8),
        ({"subject": "s", "html": "<p>x</p>", "preheader": "{% for %}"}, "preheader", 1, None),
    ],
)
def test_errors_name_part_line_and_column(kwargs, part, line, column):
    with pytest.raises(TemplateError) as info:
        compile_template(**kwargs)
    error = info.value
    assert error.part == part
    assert error.line == line
    if column is not None:
        assert error.column == column
    assert f"line {line}" in str(error) and error.message


def test_compiled_template_round_trips_through_json():
    for html in (HTML, "<p>{% if contact.first_name %}x{% endif %}</p>"):
        compiled = compile_template(subject="Hi {{ contact.first_name }}", html=html, preheader="pre")
        data = json.loads(json.dumps(compiled.to_dict()))
        again = CompiledTemplate.from_dict(data)
        assert again.uses_logic == compiled.uses_logic and again.fields == compiled.fields
        ctx = _context(first_name="Zoë")
        assert again.render(ctx) == compiled.render(ctx)


def test_braces_in_literal_html_do_not_confuse_the_fast_path():
    compiled = compile_template(
        subject="{x} {{ contact.first_name }} {0}", html="<p>{a} {{ contact.first_name }} {}</p>"
    )
    assert not compiled.uses_logic
    rendered = compiled.render(_context(first_name="Ann"))
    assert rendered.subject == "{x} Ann {0}"
    assert "<p>{a} Ann {}</p>" in rendered.html


def test_layout_wraps_the_body():
    layout = (
        '<html><body><div class=frame>{{ content }}</div><a href="{{ unsubscribe_url }}">u</a></body></html>'
    )
    compiled = compile_template(subject="s", html="<p>Hi {{ contact.first_name }}</p>", layout_html=layout)
    assert "<div class=frame><p>Hi Ann</p></div>" in compiled.render(_context(first_name="Ann")).html
    with pytest.raises(TemplateError) as info:
        compile_template(subject="s", html="<p>x</p>", layout_html="<div>no placeholder</div>")
    assert info.value.part == "layout"


def test_fast_path_equals_liquid_for_many_kinds_of_values():
    import random

    compiled = compile_template(
        subject='{{ contact.a }} {{ contact.b | default: "dflt" }}',
        html='<p title="{{ contact.a }}">{{ contact.a }}|{{ contact.b | default: "<d>" }}|{{ contact.c.d }}|{{ x.y.z }}</p>',
        text="{{ contact.a }} {{ contact.c.d }}",
    )
    assert not compiled.uses_logic
    rng = random.Random(4)
    values = [
        None,
        True,
        False,
        0,
        1,
        -2.5,
        "",
        " ",
        "<&>\"'",
        "\u00e9\u2028\r\n",
        [],
        ["a", "<b>"],
        {},
        {"d": "x"},
    ]
    for _ in range(300):
        contact = {k: rng.choice(values) for k in ("a", "b", "c") if rng.random() < 0.8}
        context = {"contact": contact}
        assert compiled.render(context) == compiled.render_liquid(context), contact


def test_preheader_is_text_not_html():
    compiled = compile_template(
        subject="s", html="<p>x</p>", preheader="50% off <today> & {{ contact.first_name }}"
    )
    html = compiled.render(_context(first_name="<Ann>")).html
    assert "50% off &lt;today&gt; &amp; &lt;Ann&gt;" in html
