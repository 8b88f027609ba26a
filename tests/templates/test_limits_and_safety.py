"""Hostile templates: endless loops, huge output, deep nesting, reaching for Python or files."""

import pytest

from templates.compiler import TemplateError, compile_template
from templates.context import recipient_context
from templates.liquid_env import LOOP_ITERATION_LIMIT, OUTPUT_STREAM_LIMIT


def _ctx(**contact):
    return recipient_context(contact={"email": "a@example.com", **contact}, urls={})


def test_loop_that_always_breaks_the_limit_is_refused_at_save_time():
    html = "<p>{% for i in (1..1000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}</p>"
    with pytest.raises(TemplateError) as info:
        compile_template(subject="s", html=html)
    assert info.value.limit and info.value.part == "html"
    assert f"{LOOP_ITERATION_LIMIT:,} iterations" in info.value.message


def test_loop_over_recipient_data_is_stopped_at_render_time():
    compiled = compile_template(
        subject="s", html="{% for a in contact.items %}{% for b in contact.items %}x{% endfor %}{% endfor %}"
    )
    assert "x" * 4 in compiled.render(_ctx(items=[1, 2])).html
    with pytest.raises(TemplateError) as info:
        compiled.render(_ctx(items=list(range(200))))
    assert info.value.limit and info.value.part == "html"


def test_enormous_output_is_stopped():
    compiled = compile_template(
        subject="s", html="{% for i in contact.items %}{{ contact.blob }}{% endfor %}"
    )
    with pytest.raises(TemplateError) as info:
        compiled.render(_ctx(items=list(range(1000)), blob="y" * 10_000))
    assert info.value.limit and f"{OUTPUT_STREAM_LIMIT:,} characters" in info.value.message


def test_capture_doubling_is_stopped():
    html = '{% assign x = "aaaaaaaaaa" %}{% for i in (1..40) %}{% capture x %}{{ x }}{{ x }}{% endcapture %}{% endfor %}{{ x }}'
    with pytest.raises(TemplateError) as info:
        compile_template(subject="s", html=html)
    assert info.value.limit


def test_deep_nesting_is_refused_with_a_position():
    html = "{% if true %}" * 40 + "x" + "{% endif %}" * 40
    with pytest.raises(TemplateError) as info:
        compile_template(subject="s", html=html)
    assert info.value.part == "html" and "nested" in info.value.message


@pytest.mark.parametrize("tag", ['{% include "/etc/passwd" %}', "{% render 'settings' %}"])
def test_no_tag_can_read_files(tag):
    with pytest.raises(TemplateError) as info:
        compile_template(subject="s", html=f"<p>{tag}</p>")
    assert info.value.line == 1 and ("include" in info.value.message or "render" in info.value.message)


@pytest.mark.parametrize(
    "expression",
    [
        "contact.__class__",
        "contact.__class__.__mro__",
        "contact.items",
        "contact.keys",
        "contact.email.__class__",
        "settings.SECRET_KEY",
        "request.user",
        "contact['__dict__']",
    ],
)
def test_python_internals_and_settings_render_nothing(expression):
    compiled = compile_template(subject="s", html=f"<p>[{{{{ {expression} }}}}]</p>")
    assert "<p>[]</p>" in compiled.render(_ctx()).html
    compiled_logic = compile_template(
        subject="s", html=f"<p>{{% if true %}}[{{{{ {expression} }}}}]{{% endif %}}</p>"
    )
    assert "<p>[]</p>" in compiled_logic.render(_ctx()).html


def test_python_objects_in_the_context_become_plain_strings():
    class Secret:
        password = "hunter2"

        def __str__(self):
            return "a secret"

    compiled = compile_template(
        subject="s", html="<p>{% if true %}{{ contact.obj }}|{{ contact.obj.password }}{% endif %}</p>"
    )
    assert "<p>a secret|</p>" in compiled.render(_ctx(obj=Secret())).html


def test_undefined_filter_is_refused_with_position():
    with pytest.raises(TemplateError) as info:
        compile_template(subject="s", html="<p>\n  {{ contact.email | shell }}</p>")
    assert (info.value.line, info.value.part) == (2, "html") and "shell" in info.value.message


def test_huge_source_is_refused():
    with pytest.raises(TemplateError) as info:
        compile_template(subject="s", html="<p>" + "x" * 600_000 + "</p>")
    assert "limit" in info.value.message


def test_values_are_escaped_in_html_and_raw_in_text_on_both_paths():
    payload = "<script>alert(1)</script>\"'&"
    for html in (
        "<p>{{ contact.first_name }}</p>",
        "<p>{% if true %}{{ contact.first_name }}{% endif %}</p>",
    ):
        rendered = compile_template(subject="s", html=html).render(_ctx(first_name=payload))
        assert "<script>" not in rendered.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;" in rendered.html
        assert payload in rendered.text
