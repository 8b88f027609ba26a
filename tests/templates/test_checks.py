"""The checks a marketer sees before sending."""

import pytest

from templates import services
from templates.checks import compiled_checks
from templates.compiler import compile_template
from templates.context import recipient_context
from templates.selectors import template_checks
from templates.starters import STARTERS

GOOD = '<p>Hi</p><a href="{{ unsubscribe_url }}">Unsubscribe</a><img src="https://x.example/a.png" alt="A">'


def _codes(html, **kwargs):
    return {r.code: r for r in compiled_checks(compile_template(subject="s", html=html), **kwargs)}


def test_a_good_template_has_no_findings():
    assert _codes(GOOD) == {}


def test_missing_unsubscribe_link_is_an_error_except_for_transactional_mail():
    codes = _codes("<p>Hi</p>")
    assert codes["no_unsubscribe"].severity == "error"
    assert "no_unsubscribe" not in _codes("<p>Hi</p>", transactional=True)


def test_html_over_102_kb_is_flagged():
    big = GOOD + "<p>" + "x" * (103 * 1024) + "</p>"
    assert "102 KB" in _codes(big)["html_too_large"].message
    assert "html_too_large" not in _codes(GOOD + "<p>" + "x" * (90 * 1024) + "</p>")


def test_images_without_alt_are_flagged_but_empty_alt_is_fine():
    codes = _codes(GOOD + '<img src="https://x.example/b.png"><img src="https://x.example/c.png" alt="">')
    assert (
        "1 image(s)" in codes["image_without_alt"].message and "b.png" in codes["image_without_alt"].message
    )


@pytest.mark.parametrize("href", ["/pricing", "pricing.html", "www.example.com", "javascript:alert(1)"])
def test_links_that_are_not_absolute_are_flagged(href):
    assert href in _codes(GOOD + f'<a href="{href}">x</a>')["relative_link"].message


@pytest.mark.parametrize(
    "href", ["https://example.com", "mailto:a@example.com", "#top", "{{ preferences_url }}"]
)
def test_absolute_and_merge_links_pass(href):
    assert "relative_link" not in _codes(GOOD + f'<a href="{href}">x</a>')


def test_unknown_fields_are_flagged():
    codes = _codes(GOOD + "{{ contat.first_name }} {{ contact.plan }}")
    assert "contat.first_name" in codes["unknown_field"].message
    assert "contact.plan" not in codes["unknown_field"].message  # may be a custom field
    strict = _codes(GOOD + "{{ contact.plan }}", custom_fields=["city"])
    assert "contact.plan" in strict["unknown_field"].message
    assert "unknown_field" not in _codes(GOOD + "{{ contact.city }}", custom_fields=["city"])


@pytest.mark.parametrize("key", sorted(STARTERS))
def test_starters_compile_render_and_pass_their_checks(key):
    starter = STARTERS[key]
    compiled = compile_template(
        subject=starter.subject,
        html=starter.html,
        preheader=starter.preheader,
        source_format=starter.source_format,
    )
    assert starter.thumbnail.startswith("<svg") and "<script" not in starter.thumbnail
    findings = [
        r for r in compiled_checks(compiled, transactional=starter.transactional) if r.severity != "info"
    ]
    assert findings == []
    rendered = compiled.render(
        recipient_context(
            contact={"email": "a@example.com", "first_name": "Ann"},
            urls={"unsubscribe_url": "https://example.com/u/1"},
            extra={
                "order": {
                    "number": "A-1",
                    "items": [{"name": "Tea", "quantity": 2, "price": "4.00"}],
                    "total": "8.00",
                }
            },
        )
    )
    assert "Ann" in rendered.html and "Ann" in rendered.text + rendered.subject + rendered.html
    assert "<style" in rendered.html  # kept for clients that read it (media queries)
    if key == "receipt":
        assert "2 × Tea" in rendered.text and "A-1" in rendered.subject


@pytest.mark.django_db
def test_selector_accepts_a_template_or_its_id():
    template = services.template_create(name="T", subject="s", html="<p>no link</p>")
    assert [r.code for r in template_checks(template)] == ["no_unsubscribe"]
    assert [r.code for r in template_checks(template.pk)] == ["no_unsubscribe"]


def test_unclosed_if_points_at_the_if_not_the_end():
    """Issue #14: the error for an unclosed {% if %} is on the line of the {% if %}."""
    from templates.compiler import TemplateError

    html = "<html>\n<body>\n<p>Hi</p>\n  {% if contact.first_name %}\n<p>x</p>\n{% for i in (1..2) %}{{ i }}{% endfor %}\n</body>\n</html>"
    with pytest.raises(TemplateError) as caught:
        compile_template(subject="s", html=html)
    assert (caught.value.part, caught.value.line, caught.value.column) == ("html", 4, 3)
    assert "{% if %} is never closed" in caught.value.message and "{% endif %}" in caught.value.message


@pytest.mark.django_db
def test_misspelt_contact_field_is_flagged_with_a_suggestion():
    """Issue #14: contact.fist_name is an unknown field, and the known fields suggest first_name
    (custom fields included, asked of the contacts app)."""
    from contacts.models import CustomField
    from templates.selectors import template_checks

    CustomField.objects.create(name="loyalty_points", label="Loyalty Points", type="number")
    compiled = compile_template(
        subject="Hi {{ contact.fist_name }}",
        html="<p>{{ contact.loyalty_pionts }} {{ contact.loyalty_points }} {{ contact.language }}</p>"
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    )
    checks = {c.code: c for c in template_checks(compiled, transactional=False)}
    message = checks["unknown_field"].message
    assert "contact.fist_name (did you mean contact.first_name?)" in message
    assert "contact.loyalty_pionts (did you mean contact.loyalty_points?)" in message
    assert "contact.loyalty_points " not in message.replace("(did you mean contact.loyalty_points?)", "")
    assert "contact.language" not in message
    assert checks["unknown_field"].severity == "warning"
