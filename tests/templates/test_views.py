"""Dashboard pages: roles, the editor's errors, the sandboxed preview, history and restore."""

import pytest
from django.urls import reverse

from mailplatform.models import AuditEntry
from templates import services
from templates.models import EmailTemplate
from tests.dbstate import changed_tables, db_fingerprint

pytestmark = pytest.mark.django_db

HTML = '<p>Hi {{ contact.first_name | default: "there" }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'


@pytest.fixture
def template():
    return services.template_create(name="Welcome", subject="Hi {{ contact.first_name }}", html=HTML)


def _post_data(template, **overrides):
    data = {
        "name": template.name,
        "subject": template.subject,
        "preheader": template.preheader,
        "html": template.html,
        "text": template.text,
        "layout": "",
        "note": "",
    }
    data.update(overrides)
    return data


def test_list_and_editor_render_for_every_role(template, developer_client):
    assert template.name in developer_client.get(reverse("templates:index")).content.decode()
    page = developer_client.get(reverse("templates:edit", args=[template.pk])).content.decode()
    assert "contact.first_name" in page and "unsubscribe_url" in page  # the variables help
    assert ">Save<" not in page  # developers read, they do not edit


def test_developer_cannot_save_create_restore_or_archive(template, developer_client):
    edit = reverse("templates:edit", args=[template.pk])
    before = db_fingerprint()
    assert developer_client.post(edit, _post_data(template, subject="x")).status_code == 403
    assert developer_client.get(reverse("templates:new")).status_code == 403
    version = template.current_version
    assert (
        developer_client.post(reverse("templates:restore", args=[template.pk, version.pk])).status_code == 403
    )
    assert developer_client.post(reverse("templates:archive", args=[template.pk])).status_code == 403
    template.refresh_from_db()
    assert template.subject == "Hi {{ contact.first_name }}" and not template.archived
    assert changed_tables(before) == []  # no version made, nothing restored or archived


def test_create_from_starter(marketer_client):
    response = marketer_client.post(reverse("templates:new"), {"name": "March news", "starter": "newsletter"})
    template = EmailTemplate.objects.get(name="March news")
    assert response.status_code == 302 and response.url == reverse("templates:edit", args=[template.pk])
    assert template.starter == "newsletter" and template.source_format == "blocks"
    assert "{{ unsubscribe_url }}" in services.template_compile(template.pk).html
    receipt = marketer_client.post(reverse("templates:new"), {"name": "Receipt", "starter": "receipt"})
    assert receipt.status_code == 302 and EmailTemplate.objects.get(name="Receipt").transactional


def test_save_error_shows_part_line_column_and_keeps_stored_content(template, marketer_client):
    bad = "<p>one</p>\n<p>two {% if %}</p>"
    response = marketer_client.post(
        reverse("templates:edit", args=[template.pk]), _post_data(template, html=bad)
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "html at line 2, column 11" in page and "missing expression" in page
    assert "   2 | &lt;p&gt;two {% if %}&lt;/p&gt;" in page  # the line, with a caret under the column
    template.refresh_from_db()
    assert template.html == HTML and template.versions.count() == 1


def test_save_records_a_version(template, marketer_client):
    response = marketer_client.post(
        reverse("templates:edit", args=[template.pk]),
        _post_data(template, subject="New subject", note="shorter"),
    )
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.subject == "New subject" and template.current_version.number == 2
    assert template.current_version.note == "shorter"
    assert AuditEntry.objects.filter(action="template.updated", actor__username="mara").exists()


def test_preview_is_sandboxed_and_renders_sample_data(template, marketer_client):
    response = marketer_client.get(reverse("templates:preview", args=[template.pk]))
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp and "script-src" not in csp
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "<p>Hi Ada</p>" in response.content.decode()


def test_draft_preview_with_custom_data_and_text_part(template, marketer_client):
    url = reverse("templates:preview", args=[template.pk])
    data = _post_data(template, html="<p>Hello {{ contact.first_name }} from {{ contact.city }}</p>")
    data["preview_data"] = '{"contact": {"first_name": "Grace", "city": "<b>NYC</b>"}}'
    page = marketer_client.post(url, data).content.decode()
    assert "Hello Grace from &lt;b&gt;NYC&lt;/b&gt;" in page
    data["part"] = "text"
    text_page = marketer_client.post(url, data).content.decode()
    assert "Hello Grace from &lt;b&gt;NYC&lt;/b&gt;" in text_page and "<pre" in text_page
    template.refresh_from_db()
    assert template.html == HTML  # previewing saves nothing


def test_preview_of_scripts_cannot_run(template, marketer_client):
    data = _post_data(template, html="<p>x</p><script>parent.document.title='owned'</script>")
    response = marketer_client.post(reverse("templates:preview", args=[template.pk]), data)
    # The mail's HTML is shown as written, but the response forbids scripts and runs sandboxed.
    assert "sandbox" in response["Content-Security-Policy"]
    assert "script-src" not in response["Content-Security-Policy"]


def test_preview_errors_are_explained(template, marketer_client):
    url = reverse("templates:preview", args=[template.pk])
    page = marketer_client.post(url, _post_data(template, html="{% for x in y %}")).content.decode()
    assert "cannot be shown" in page and "html at line 1" in page
    bad_json = _post_data(template)
    bad_json["preview_data"] = "{not json"
    assert "not valid JSON" in marketer_client.post(url, bad_json).content.decode()


def test_preview_meta_shows_subject_and_checks(template, marketer_client):
    url = reverse("templates:preview-meta", args=[template.pk])
    page = marketer_client.post(
        url, _post_data(template, html="<p>no link</p><img src='/a.png'>")
    ).content.decode()
    assert "Hi Ada" in page
    assert "no unsubscribe link" in page.lower() and "not absolute" in page and "without alt" in page
    err = marketer_client.post(url, _post_data(template, subject="{{ x")).content.decode()
    assert "subject" in err and "line 1" in err


def test_history_and_restore(template, marketer_client):
    first = template.current_version
    services.template_update(template.pk, subject="Changed")
    page = marketer_client.get(reverse("templates:versions", args=[template.pk])).content.decode()
    assert "v1" in page and "v2" in page and "Restore v1" in page
    preview = marketer_client.get(reverse("templates:version-preview", args=[template.pk, first.pk]))
    assert "sandbox" in preview["Content-Security-Policy"]
    response = marketer_client.post(reverse("templates:restore", args=[template.pk, first.pk]))
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.subject == "Hi {{ contact.first_name }}" and template.current_version.number == 3


def test_restore_refuses_another_templates_version(template, marketer_client):
    other = services.template_create(name="Other", subject="o", html=HTML)
    url = reverse("templates:restore", args=[template.pk, other.current_version.pk])
    assert marketer_client.post(url).status_code == 404


def test_duplicate_and_archive(template, marketer_client):
    marketer_client.post(reverse("templates:duplicate", args=[template.pk]))
    assert EmailTemplate.objects.filter(name="Welcome (copy)").exists()
    marketer_client.post(reverse("templates:archive", args=[template.pk]), {"archived": "1"})
    template.refresh_from_db()
    assert template.archived
    assert "Welcome</a>" not in marketer_client.get(reverse("templates:index")).content.decode()


def test_home_fragment(template, developer_client):
    page = developer_client.get(reverse("templates:home-fragment")).content.decode()
    assert "templates" in page and "<strong>1</strong>" in page


def test_history_lists_changed_fields_and_shows_a_diff(template, marketer_client):
    services.template_update(template.pk, subject="Brand new subject")
    template.refresh_from_db()
    page = marketer_client.get(reverse("templates:versions", args=[template.pk])).content.decode()
    assert ">subject</a>" in page and "first version" in page
    diff = marketer_client.get(
        reverse("templates:version-diff", args=[template.pk, template.current_version.pk])
    ).content.decode()
    assert "-Hi {{ contact.first_name }}" in diff and "+Brand new subject" in diff


def test_archived_layout_in_use_stays_selected(marketer_client):
    layout = services.template_create(name="Frame", html="<div>{{ content }}</div>", kind="layout")
    template = services.template_create(name="T", subject="s", html=HTML, layout=layout)
    services.template_set_archived(layout.pk, True)
    page = marketer_client.get(reverse("templates:edit", args=[template.pk])).content.decode()
    assert f'<option value="{layout.pk}" selected>Frame</option>' in page


def test_saving_with_an_unknown_field_flags_it(template, marketer_client):
    edit = reverse("templates:edit", args=[template.pk])
    response = marketer_client.post(
        edit, _post_data(template, subject="Hi {{ contakt.first_name }}"), follow=True
    )
    page = response.content.decode()
    assert "Saved" in page and "Unknown field(s): contakt.first_name" in page
