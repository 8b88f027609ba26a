"""Dashboard pages for email templates: list, new, editor with live preview, history."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings as django_settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_http_methods, require_POST

from mailplatform.permissions import requires
from mailplatform.roles import can
from templates import selectors, services
from templates.blocks import BLOCK_TYPES
from templates.compiler import TemplateError
from templates.context import SAMPLE_CONTACT, VARIABLE_HELP
from templates.formats import FORMAT_LABELS, SOURCE_FORMATS, FormatError, switch_format
from templates.forms import NewTemplateForm, PreviewForm, TemplateForm
from templates.models import EmailTemplate, SourceFormat, TemplateVersion
from templates.starters import BLANK_BODIES, STARTERS

# The preview shows untrusted HTML: no scripts, no plugins, no requests but images and fonts,
# and a sandbox (an opaque origin) even for a browser that ignores the iframe's attribute.
PREVIEW_CSP = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https:; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
FORM_FIELD_FOR_PART = {
    "subject": "subject",
    "preheader": "preheader",
    "html": "html",
    "text": "text",
    "layout": "layout",
    "name": "name",
}
BLANK_HTML = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { margin: 0; font-family: Helvetica, Arial, sans-serif; color: #1f2937; }
  .content { max-width: 600px; margin: 0 auto; padding: 24px; }
</style>
</head>
<body>
<div class="content">
  <p>Hi {{ contact.first_name | default: "there" }},</p>
  <p>Write your message here.</p>
  <p style="font-size: 12px; color: #6b7280"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</div>
</body>
</html>
"""
BLANK_LAYOUT = """<!doctype html>
<html>
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 0; background: #f3f4f6; } .frame { max-width: 600px; margin: 0 auto; background: #fff; padding: 24px; font-family: Helvetica, Arial, sans-serif; }</style>
</head>
<body>
<div class="frame">
{{ content }}
<p style="font-size: 12px; color: #6b7280"><a href="{{ preferences_url }}">Preferences</a> · <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</div>
</body>
</html>
"""


def _require_editor(request: HttpRequest) -> None:
    if not can(request.user, "manage_templates"):
        raise PermissionDenied("Your role may not manage templates.")


def _error_snippet(error: TemplateError, source: str) -> str:
    """The offending line with a caret under the column, for the editor."""
    if error.line is None:
        return ""
    lines = source.replace("\r\n", "\n").split("\n")
    if not 1 <= error.line <= len(lines):
        return ""
    line = lines[error.line - 1]
    column = max((error.column or 1) - 1, 0)
    start = max(column - 60, 0)
    return f"{error.line:>4} | {line[start : start + 120]}\n     | {' ' * (column - start)}^"


def _add_template_error(form: TemplateForm, error: TemplateError) -> None:
    field = FORM_FIELD_FOR_PART.get(error.part)
    if field not in form.fields:
        field = None
    source = str(form.data.get(field, "")) if field else ""
    if error.part == "layout" and field and form.cleaned_data.get("layout") is not None:
        source = form.cleaned_data["layout"].html
    snippet = _error_snippet(error, source)
    form.add_error(field, str(error) + (f"\n{snippet}" if snippet else ""))


@requires("view_dashboard")
def index(request: HttpRequest) -> HttpResponse:
    archived = request.GET.get("archived") == "1"
    templates = selectors.template_list(archived=archived)
    return render(
        request,
        "email_templates/index.html",
        {"templates": templates, "archived": archived, "can_edit": can(request.user, "manage_templates")},
    )


@requires("manage_templates")
def new(request: HttpRequest) -> HttpResponse:
    form = NewTemplateForm(request.POST or None, initial={"starter": request.GET.get("starter", "")})
    if request.method == "POST" and form.is_valid():
        key = form.cleaned_data["starter"]
        fields: dict[str, Any] = {"name": form.cleaned_data["name"], "html": BLANK_HTML, "subject": "Hello"}
        if key == "layout":
            fields.update(html=BLANK_LAYOUT, kind=EmailTemplate.Kind.LAYOUT, subject="")
        elif key in BLANK_BODIES:
            fields.update(html=BLANK_BODIES[key], source_format=key)
        elif key:
            starter = STARTERS[key]
            fields.update(
                html=starter.html,
                subject=starter.subject,
                preheader=starter.preheader,
                starter=key,
                transactional=starter.transactional,
                source_format=starter.source_format,
            )
        template = services.template_create(**fields, by=request.user)
        messages.success(request, f"Created “{template.name}”.")
        return redirect("templates:edit", pk=template.pk)
    return render(
        request,
        "email_templates/new.html",
        {"form": form, "starters": STARTERS.values(), "blank_formats": NewTemplateForm.BLANK_FORMATS},
    )


@requires("view_dashboard")
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate.objects.select_related("layout", "current_version"), pk=pk)
    can_edit = can(request.user, "manage_templates")
    status = 200
    if request.method == "POST":
        _require_editor(request)
        form = TemplateForm(request.POST, template=template)
        if form.is_valid():
            data = dict(form.cleaned_data)
            note = data.pop("note", "")
            data.pop("source_format", None)  # the mode changes only through switch_mode
            try:
                services.template_update(template.pk, by=request.user, note=note, **data)
            except TemplateError as error:
                _add_template_error(form, error)
            else:
                messages.success(request, f"Saved “{data['name']}”.")
                for check in selectors.template_checks(template.pk):
                    if check.code in ("unknown_field", "no_unsubscribe"):
                        messages.warning(request, check.message)
                return redirect("templates:edit", pk=template.pk)
        status = 400
    else:
        form = TemplateForm(
            initial={
                "name": template.name,
                "subject": template.subject,
                "preheader": template.preheader,
                "layout": template.layout_id,
                "html": template.html,
                "text": template.text,
                "transactional": template.transactional,
                "source_format": template.source_format,
            },
            template=template,
        )
    return _render_editor(request, template, form, can_edit, status)


def _render_editor(
    request: HttpRequest, template: EmailTemplate, form: TemplateForm, can_edit: bool, status: int = 200
) -> HttpResponse:
    source_format = template.source_format
    context = {
        "template": template,
        "form": form,
        "can_edit": can_edit,
        "checks": selectors.template_checks(template),
        "variables": VARIABLE_HELP,
        # A failed save shows the page again: keep the marketer's own preview data.
        "sample_data": request.POST.get("preview_data") or json.dumps({"contact": SAMPLE_CONTACT}, indent=2),
        "is_layout": template.kind == EmailTemplate.Kind.LAYOUT,
        "contact_lookup_url": _contact_lookup_url(),
        "source_format": source_format,
        "format_label": FORMAT_LABELS[source_format],
        "switch_targets": [(f, FORMAT_LABELS[f]) for f in SOURCE_FORMATS if f != source_format],
        "block_types": [(key, label) for key, (label, _) in BLOCK_TYPES.items() if key != "columns"],
        "test_send_url": _named_url("delivery:template-test-send", template_id=template.pk),
        "media_picker_url": reverse("media:picker"),
        "attachment_limit": django_settings.TEMPLATE_ATTACHMENTS_MAX_BYTES,
        "block_defaults": json.dumps({key: fields for key, (_, fields) in BLOCK_TYPES.items()}),
    }
    return render(request, "email_templates/edit.html", context, status=status)


def _named_url(name: str, **kwargs: Any) -> str | None:
    """Another app's page, by URL name (templates imports no app but media); None where absent."""
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return None


@require_POST
@requires("manage_templates")
def switch_mode(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the editor's draft in another source format, when nothing would be lost; say why not otherwise."""
    template = get_object_or_404(EmailTemplate.objects.select_related("layout", "current_version"), pk=pk)
    form = TemplateForm(request.POST, template=template)
    target = request.POST.get("target", "")
    if not form.is_valid():
        return _render_editor(request, template, form, True, 400)
    data = dict(form.cleaned_data)
    data.pop("note", None)
    data.pop("source_format", None)
    try:
        if template.kind == EmailTemplate.Kind.LAYOUT:
            raise FormatError("a base layout is written in HTML")
        if target == SourceFormat.MJML or target == SourceFormat.BLOCKS:
            if data.get("layout") is not None:
                raise FormatError(
                    f"{FORMAT_LABELS[target]} templates are whole documents: remove the base layout first"
                )
        data["html"] = switch_format(
            template.source_format, data["html"], target, has_layout=data.get("layout") is not None
        )
        services.template_update(
            template.pk,
            by=request.user,
            note=f"Switched from {FORMAT_LABELS[template.source_format]} to {FORMAT_LABELS[target]}",
            source_format=target,
            **data,
        )
    except (FormatError, TemplateError, KeyError) as error:
        message = (
            f"Not switched: {error}" if not isinstance(error, KeyError) else "Not switched: unknown mode"
        )
        messages.error(request, message)
        return _render_editor(request, template, form, True, 400)
    messages.success(request, f"Now in {FORMAT_LABELS[target]} mode. Nothing was lost.")
    return redirect("templates:edit", pk=template.pk)


@require_POST
@requires("manage_templates")
def attachment_add(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(EmailTemplate, pk=pk)
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise TemplateError("choose a file to attach", part="attachments")
        if upload.size > django_settings.TEMPLATE_ATTACHMENTS_MAX_BYTES:
            raise TemplateError(
                f"{upload.name} is {upload.size / 1048576:.1f} MB; a message may carry at most "
                f"{django_settings.TEMPLATE_ATTACHMENTS_MAX_BYTES / 1048576:.1f} MB of attachments",
                part="attachments",
            )
        template = services.template_attach(
            pk, data=upload.read(), filename=upload.name or "", by=request.user
        )
    except TemplateError as error:
        messages.error(request, f"Not attached: {error.message}")
    else:
        messages.success(request, f"Attached {template.attachments[-1]['filename']}.")
    return redirect("templates:edit", pk=pk)


@require_POST
@requires("manage_templates")
def attachment_remove(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    get_object_or_404(EmailTemplate, pk=pk)
    try:
        services.template_detach(pk, index=index, by=request.user)
    except TemplateError as error:
        messages.error(request, f"Not removed: {error.message}")
    else:
        messages.success(request, "Attachment removed.")
    return redirect("templates:edit", pk=pk)


def _contact_lookup_url() -> str | None:
    """The contacts app's JSON endpoint for a contact's preview data, when it offers one.

    Named by URL, not imported: templates depends on no other app. Contract: GET ?q=<email>
    answers {"contact": {"email": ..., "first_name": ..., ...custom fields}} or 404.
    """
    try:
        return reverse("contacts:preview-data")
    except NoReverseMatch:
        return None


def _preview_page(body: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = PREVIEW_CSP
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def _message_page(title: str, message: str) -> HttpResponse:
    return _preview_page(
        '<!doctype html><meta charset="utf-8"><body style="font:14px system-ui,sans-serif;padding:1rem;color:#7a271a">'
        f'<strong>{escape(title)}</strong><pre style="white-space:pre-wrap">{escape(message)}</pre></body>'
    )


def _text_page(text: str) -> HttpResponse:
    return _preview_page(
        '<!doctype html><meta charset="utf-8"><body style="margin:0">'
        '<pre style="white-space:pre-wrap;font:14px/1.5 ui-monospace,monospace;padding:1rem;margin:0">'
        f"{escape(text)}</pre></body>"
    )


def _render_preview_form(request: HttpRequest, template: EmailTemplate) -> tuple[PreviewForm, Any]:
    form = PreviewForm(request.POST, template=template)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    try:
        return form, selectors.template_preview(
            kind=template.kind,
            subject=data["subject"],
            html=data["html"] or "",
            text=data["text"],
            preheader=data["preheader"],
            layout=data.get("layout"),
            data=data["preview_data"],
            source_format=data.get("source_format") or template.source_format,
        )
    except (TemplateError, ValueError) as error:
        return form, error


@xframe_options_sameorigin
@require_http_methods(["GET", "POST"])
@requires("view_dashboard")
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The rendered mail for the preview iframe: saved content on GET, the editor's draft on POST."""
    template = get_object_or_404(EmailTemplate.objects.select_related("layout"), pk=pk)
    part = request.POST.get("part") or request.GET.get("part") or "html"
    if request.method == "GET":
        try:
            _, rendered = selectors.saved_template_preview(template)
        except TemplateError as error:
            return _message_page("This template does not compile", str(error))
    else:
        form, result = _render_preview_form(request, template)
        if result is None:
            errors = "\n".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
            return _message_page("The preview cannot be shown", errors)
        if isinstance(result, Exception):
            return _message_page("The preview cannot be shown", str(result))
        _, rendered = result
    return _text_page(rendered.text) if part == "text" else _preview_page(rendered.html)


@require_POST
@requires("view_dashboard")
def preview_meta(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx fragment beside the preview: rendered subject, errors with line and column, checks."""
    template = get_object_or_404(EmailTemplate, pk=pk)
    form, result = _render_preview_form(request, template)
    context: dict[str, Any] = {"form": form, "error": None, "rendered": None, "checks": []}
    if isinstance(result, TemplateError):
        field = FORM_FIELD_FOR_PART.get(result.part)
        context["error"] = result
        context["snippet"] = _error_snippet(result, str(request.POST.get(field or "", "")))
    elif isinstance(result, Exception):
        context["error"] = result
    elif result is not None:
        compiled, rendered = result
        context["rendered"] = rendered
        context["compiled"] = compiled
        context["fields"] = sorted(compiled.fields)
        transactional = bool(form.cleaned_data.get("transactional"))
        context["checks"] = selectors.compiled_checks(
            compiled, custom_fields=selectors.known_custom_fields(), transactional=transactional
        )
    return render(request, "email_templates/_preview_meta.html", context)


@requires("view_dashboard")
def versions(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate, pk=pk)
    return render(
        request,
        "email_templates/versions.html",
        {
            "template": template,
            "history": selectors.template_history(template.pk),
            "can_edit": can(request.user, "manage_templates"),
        },
    )


@xframe_options_sameorigin
@requires("view_dashboard")
def version_preview(request: HttpRequest, pk: int, version_id: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate, pk=pk)
    version = get_object_or_404(
        TemplateVersion.objects.select_related("layout"), pk=version_id, template=template
    )
    try:
        _, rendered = selectors.saved_template_preview(template, version=version)
    except TemplateError as error:
        return _message_page("This version does not compile", str(error))
    return _text_page(rendered.text) if request.GET.get("part") == "text" else _preview_page(rendered.html)


@requires("view_dashboard")
def version_diff(request: HttpRequest, pk: int, version_id: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate, pk=pk)
    version = get_object_or_404(TemplateVersion, pk=version_id, template=template)
    return render(
        request,
        "email_templates/version_diff.html",
        {"template": template, "version": version, "diff": selectors.version_diff(version)},
    )


@require_POST
@requires("manage_templates")
def restore(request: HttpRequest, pk: int, version_id: int) -> HttpResponse:
    if not TemplateVersion.objects.filter(pk=version_id, template_id=pk).exists():
        raise Http404("No such version of this template")
    try:
        template = services.template_restore(pk, version_id, by=request.user)
    except TemplateError as error:
        messages.error(request, f"Version could not be restored: {error}")
        return redirect("templates:versions", pk=pk)
    messages.success(request, f"Restored; this is now version {template.current_version.number}.")
    return redirect("templates:edit", pk=pk)


@require_POST
@requires("manage_templates")
def duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(EmailTemplate, pk=pk)
    copy = services.template_duplicate(pk, by=request.user)
    messages.success(request, f"Created “{copy.name}”.")
    return redirect("templates:edit", pk=copy.pk)


@require_POST
@requires("manage_templates")
def archive(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(EmailTemplate, pk=pk)
    archived = request.POST.get("archived", "1") == "1"
    template = services.template_set_archived(pk, archived, by=request.user)
    messages.success(request, f"{'Archived' if archived else 'Restored'} “{template.name}”.")
    return redirect("templates:index")


@requires("view_dashboard")
def home_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "email_templates/home_fragment.html", {"figures": selectors.home_figures()})
