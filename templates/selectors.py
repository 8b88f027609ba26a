"""Reads for email templates: lists, versions and the checks shown to the marketer."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, QuerySet

from templates.checks import CheckResult, compiled_checks
from templates.compiler import CompiledTemplate, TemplateError
from templates.models import EmailTemplate, TemplateVersion

__all__ = [
    "CheckResult",
    "template_checks",
    "template_list",
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


def layout_choices() -> QuerySet[EmailTemplate]:
    return EmailTemplate.objects.filter(kind=EmailTemplate.Kind.LAYOUT, archived=False).order_by("name")


def template_checks(
    template_or_compiled: EmailTemplate | CompiledTemplate | int,
    *,
    custom_fields: Iterable[str] | None = None,
    transactional: bool = False,
) -> list[CheckResult]:
    """Check results (code, message, severity) for a template, its id, or a compiled snapshot.

    An "error" stops nothing by itself: the campaign review page decides what blocks a send.
    """
    if isinstance(template_or_compiled, CompiledTemplate):
        compiled = template_or_compiled
    else:
        from templates.services import template_compile

        template_id = (
            template_or_compiled if isinstance(template_or_compiled, int) else template_or_compiled.pk
        )
        try:
            compiled = template_compile(template_id)
        except TemplateError as exc:
            return [CheckResult("invalid", str(exc), "error")]
    return compiled_checks(compiled, custom_fields=custom_fields, transactional=transactional)


def home_figures() -> dict[str, int]:
    qs = EmailTemplate.objects.filter(archived=False)
    return {
        "templates": qs.filter(kind=EmailTemplate.Kind.TEMPLATE).count(),
        "layouts": qs.filter(kind=EmailTemplate.Kind.LAYOUT).count(),
        "versions": TemplateVersion.objects.filter(template__archived=False).count(),
    }
