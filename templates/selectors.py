"""Reads for email templates: lists, versions and the checks shown to the marketer."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import Count, QuerySet

from templates.checks import CheckResult, compiled_checks
from templates.compiler import CompiledTemplate, RenderedEmail, TemplateError, compile_template
from templates.context import SAMPLE_CONTACT, SAMPLE_ORG, SAMPLE_URLS, recipient_context, sample_context
from templates.liquid_env import plain_data
from templates.models import EmailTemplate, TemplateVersion

__all__ = [
    "CheckResult",
    "template_checks",
    "template_history",
    "template_list",
    "version_diff",
    "template_versions",
    "layout_choices",
    "home_figures",
]


def template_list(*, archived: bool = False, kind: str | None = None) -> QuerySet[EmailTemplate]:
    qs = EmailTemplate.objects.filter(archived=archived).select_related("current_version")
    if kind:
        qs = qs.filter(kind=kind)
    return qs.annotate(version_count=Count("versions")).order_by("name", "id")


def template_versions(template_id: int) -> QuerySet[TemplateVersion]:
    return (
        TemplateVersion.objects.filter(template_id=template_id)
        .select_related("created_by")
        .order_by("-number")
    )


VERSION_FIELDS = ("name", "subject", "preheader", "html", "text", "layout_id", "transactional")


def template_history(template_id: int) -> list[tuple[TemplateVersion, list[str]]]:
    """Versions, newest first, each with the fields it changed from the one before."""
    versions = list(template_versions(template_id))
    history = []
    for newer, older in zip(versions, [*versions[1:], None], strict=True):
        if older is None:
            changed: list[str] = []
        else:
            changed = [
                f.removesuffix("_id") for f in VERSION_FIELDS if getattr(newer, f) != getattr(older, f)
            ]
        history.append((newer, changed))
    return history


def version_diff(version: TemplateVersion) -> str:
    """A unified diff of a version against the one before it."""
    previous = (
        TemplateVersion.objects.filter(template_id=version.template_id, number__lt=version.number)
        .order_by("-number")
        .first()
    )
    chunks = []
    for name in ("subject", "preheader", "html", "text"):
        before = getattr(previous, name) if previous is not None else ""
        after = getattr(version, name)
        if before == after:
            continue
        chunks.extend(
            difflib.unified_diff(
                before.splitlines(),
                after.splitlines(),
                f"{name} v{previous.number if previous else 0}",
                f"{name} v{version.number}",
                lineterm="",
            )
        )
    return "\n".join(chunks)


def layout_choices() -> QuerySet[EmailTemplate]:
    return EmailTemplate.objects.filter(kind=EmailTemplate.Kind.LAYOUT, archived=False).order_by("name")


def known_custom_fields() -> list[str] | None:
    """The contact custom fields' keys, asked of the contacts app (None where none answers)."""
    from mailplatform import lookups

    names = lookups.ask(lookups.CUSTOM_FIELD_NAMES)
    return list(names()) if names is not None else None


def template_checks(
    template_or_compiled: EmailTemplate | CompiledTemplate | int,
    *,
    custom_fields: Iterable[str] | None = None,
    transactional: bool | None = None,
) -> list[CheckResult]:
    """Check results (code, message, severity) for a template, its id, or a compiled snapshot.

    An "error" stops nothing by itself: the campaign review page decides what blocks a send.
    """
    if isinstance(template_or_compiled, CompiledTemplate):
        compiled = template_or_compiled
    else:
        if transactional is None:
            template = (
                template_or_compiled
                if isinstance(template_or_compiled, EmailTemplate)
                else EmailTemplate.objects.get(pk=template_or_compiled)
            )
            transactional = template.transactional
        from templates.services import template_compile

        template_id = (
            template_or_compiled if isinstance(template_or_compiled, int) else template_or_compiled.pk
        )
        try:
            compiled = template_compile(template_id)
        except TemplateError as exc:
            return [CheckResult("invalid", str(exc), "error")]
    if custom_fields is None:
        custom_fields = known_custom_fields()
    return compiled_checks(compiled, custom_fields=custom_fields, transactional=bool(transactional))


def home_figures() -> dict[str, int]:
    qs = EmailTemplate.objects.filter(archived=False)
    return {
        "templates": qs.filter(kind=EmailTemplate.Kind.TEMPLATE).count(),
        "layouts": qs.filter(kind=EmailTemplate.Kind.LAYOUT).count(),
        "versions": TemplateVersion.objects.filter(template__archived=False).count(),
    }


def template_preview(
    *,
    kind: str,
    subject: str,
    html: str,
    text: str = "",
    preheader: str = "",
    layout: EmailTemplate | None = None,
    data: Mapping[str, Any] | None = None,
    source_format: str = "html",
    attachments: Sequence[Mapping[str, Any]] = (),
) -> tuple[CompiledTemplate, RenderedEmail]:
    """Compile unsaved content and render it with sample data, or with the plain data given.

    `data` is {"contact": {...}, "<extra>": ...}; other apps pass a real contact's fields here.
    Raises TemplateError like a save would.
    """
    if kind == EmailTemplate.Kind.LAYOUT:
        compiled = compile_template(
            subject=subject or "Layout preview",
            html="<p>Your content goes here.</p>",
            preheader=preheader,
            layout_html=html,
        )
    else:
        if layout is not None and layout.kind != EmailTemplate.Kind.LAYOUT:
            raise TemplateError(f"'{layout.name}' is not a base layout", part="layout")
        compiled = compile_template(
            subject=subject or "(no subject)",
            html=html,
            text=text or None,
            preheader=preheader,
            layout_html=layout.html if layout is not None else None,
            source_format=source_format,
            attachments=attachments,
        )
    data = dict(data or {})
    contact = data.pop("contact", None)
    from mailplatform.selectors import org_data

    org = {**SAMPLE_ORG, **{k: v for k, v in org_data().items() if v}}  # the real details where set
    context = (
        sample_context(contact, org) if not data else {**sample_context(contact, org), **plain_data(data)}
    )
    return compiled, compiled.render(context)


def saved_template_preview(
    template: EmailTemplate, *, version: TemplateVersion | None = None, data: Mapping[str, Any] | None = None
) -> tuple[CompiledTemplate, RenderedEmail]:
    """template_preview of a saved template as it is (or as `version` of it was)."""
    source = version or template
    return template_preview(
        kind=template.kind,
        subject=source.subject,
        html=source.html,
        text=source.text,
        preheader=source.preheader,
        layout=source.layout,
        data=data,
        source_format=source.source_format,
        attachments=source.attachments or (),
    )


def template_render(
    template_id: int,
    *,
    contact: Mapping[str, Any] | None = None,
    urls: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    version_id: int | None = None,
) -> RenderedEmail:
    """A saved template rendered for one contact's plain data (sample data when none is given).

    For review pages in other apps ("preview as this contact"); sample links fill in missing URLs.
    """
    from mailplatform.selectors import org_data
    from templates.services import template_compile

    compiled = template_compile(template_id, version_id)
    context = recipient_context(
        contact=contact or SAMPLE_CONTACT, urls={**SAMPLE_URLS, **(urls or {})}, extra=extra, org=org_data()
    )
    return compiled.render(context)


def templates_exist() -> bool:
    """The home checklist's "create an email template" step."""
    return EmailTemplate.objects.filter(kind=EmailTemplate.Kind.TEMPLATE).exists()
