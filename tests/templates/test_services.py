"""Saving templates: validated first, every save a version, restore, audit."""

import pytest

from mailplatform.models import AuditEntry
from templates import services
from templates.compiler import TemplateError
from templates.context import sample_context
from templates.models import EmailTemplate, TemplateVersion

pytestmark = pytest.mark.django_db

HTML = '<p>Hi {{ contact.first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'


def test_create_records_version_and_audit(make_user):
    user = make_user()
    template = services.template_create(name="Welcome", subject="Hi", html=HTML, by=user)
    assert template.current_version.number == 1
    assert template.current_version.html == HTML
    assert AuditEntry.objects.filter(action="template.created", target_id=str(template.pk)).exists()


def test_invalid_template_stores_nothing():
    with pytest.raises(TemplateError) as info:
        services.template_create(name="Bad", subject="Hi", html="<p>{% if x %}</p>")
    assert info.value.part == "html"
    assert not EmailTemplate.objects.exists() and not TemplateVersion.objects.exists()


def test_update_adds_version_and_bad_update_changes_nothing(make_user):
    user = make_user()
    template = services.template_create(name="T", subject="One", html=HTML, by=user)
    services.template_update(template.pk, subject="Two", by=user)
    template.refresh_from_db()
    assert template.subject == "Two" and template.current_version.number == 2
    with pytest.raises(TemplateError):
        services.template_update(template.pk, html="{{ broken", by=user)
    template.refresh_from_db()
    assert template.html == HTML and template.versions.count() == 2
    # Saving the same content again is not a new version.
    services.template_update(template.pk, subject="Two", by=user)
    assert template.versions.count() == 2


def test_restore_makes_a_new_version_with_old_content(make_user):
    user = make_user()
    template = services.template_create(name="T", subject="One", html=HTML, by=user)
    first = template.current_version
    services.template_update(template.pk, subject="Two", html="<p>changed</p>", by=user)
    services.template_restore(template.pk, first.pk, by=user)
    template.refresh_from_db()
    assert template.subject == "One" and template.html == HTML
    assert template.current_version.number == 3
    assert "Restored version 1" in template.current_version.note
    assert AuditEntry.objects.filter(action="template.restored").count() == 1


def test_compile_current_or_given_version():
    template = services.template_create(name="T", subject="Hi {{ contact.first_name }}", html=HTML)
    first = template.current_version
    services.template_update(template.pk, subject="Bye {{ contact.first_name }}")
    ctx = sample_context()
    assert services.template_compile(template.pk).render(ctx).subject == "Bye Ada"
    assert services.template_compile(template.pk, first.pk).render(ctx).subject == "Hi Ada"


def test_layouts_wrap_templates_and_must_have_a_content_placeholder():
    with pytest.raises(TemplateError):
        services.template_create(name="L", html="<div>x</div>", kind="layout")
    layout = services.template_create(name="L", html="<div id=frame>{{ content }}</div>", kind="layout")
    template = services.template_create(name="T", subject="s", html=HTML, layout=layout)
    assert (
        "<div id=frame><p>Hi Ada</p>" in services.template_compile(template.pk).render(sample_context()).html
    )
    not_a_layout = services.template_create(name="X", subject="s", html=HTML)
    with pytest.raises(TemplateError):
        services.template_update(template.pk, layout=not_a_layout)


@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_get_distinct_version_numbers():
    import threading

    from django.db import connection

    template = services.template_create(name="T", subject="v1", html=HTML)
    barrier = threading.Barrier(4)
    errors = []

    def save(n):
        try:
            barrier.wait()
            services.template_update(template.pk, subject=f"from thread {n}")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = sorted(template.versions.values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4, 5]
    template.refresh_from_db()
    assert template.current_version.number == 5 and template.subject == template.current_version.subject


def test_render_a_saved_template_for_a_contact():
    from templates.selectors import template_render

    template = services.template_create(name="T", subject="Hi {{ contact.first_name }}", html=HTML)
    mail = template_render(template.pk, contact={"email": "g@example.com", "first_name": "Grace"})
    assert mail.subject == "Hi Grace" and "https://example.com/u/sample-unsubscribe" in mail.html
    assert template_render(template.pk).subject == "Hi Ada"
