"""Dashboard pages (login and a capability on every view) and the public pages (signed links)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.db import IntegrityError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from contacts import selectors, services, tokens
from contacts.forms import (
    ContactEditForm,
    ContactForm,
    CustomFieldForm,
    ImportStartForm,
    ImportUploadForm,
    MailingListForm,
    SegmentForm,
    SignupFormForm,
    SubscribeForm,
    SuppressionForm,
    builder_context,
    rules_from_post,
)
from contacts.imports import ImportFileError, field_name_for, neutralise_cell, preview, suggest_mapping
from contacts.models import (
    Contact,
    ContactImport,
    ContactStatus,
    CustomField,
    ImportStatus,
    MailingList,
    Segment,
    SignupForm,
    Suppression,
)
from contacts.segments import SegmentError
from contacts.validation import EmailError, address_flags
from mailplatform.errors import PlatformError, form_error, message_error
from mailplatform.permissions import requires
from mailplatform.roles import can


def _editor(request: HttpRequest) -> bool:
    return can(request.user, "manage_contacts")


def _post_requires_editor(request: HttpRequest) -> None:
    if request.method == "POST" and not _editor(request):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("Your role may not manage contacts.")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# --- Contacts ---


@requires("view_dashboard")
def index(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in ContactStatus.values:
        status = ""
    filters = {
        "search": request.GET.get("q", "")[:320],
        "status": status,
        "list_id": _int(request.GET.get("list")),
        "segment_id": _int(request.GET.get("segment")),
    }
    if filters["segment_id"] and not Segment.objects.filter(pk=filters["segment_id"]).exists():
        filters["segment_id"] = None
    try:
        contacts, has_newer, has_older = selectors.contacts_page(
            **filters, after_id=_int(request.GET.get("after")), before_id=_int(request.GET.get("before"))
        )
        error = ""
    except SegmentError as exc:
        contacts, has_newer, has_older, error = [], False, False, f"That segment cannot be used: {exc}"
    keep = {k: v for k, v in request.GET.items() if k in ("q", "status", "list", "segment") and v}
    context = {
        "contacts": contacts,
        "has_newer": has_newer,
        "has_older": has_older,
        "newer_query": _query(keep, before=contacts[0].id) if contacts and has_newer else "",
        "older_query": _query(keep, after=contacts[-1].id) if contacts and has_older else "",
        "filters": filters,
        "statuses": ContactStatus.choices,
        "lists": MailingList.objects.order_by("name"),
        "segments": Segment.objects.order_by("name"),
        "error": error,
        "can_edit": _editor(request),
    }
    return render(request, "contacts/index.html", context)


def _query(keep: dict[str, str], **extra: Any) -> str:
    from urllib.parse import urlencode

    return urlencode({**keep, **extra})


@requires("manage_contacts")
def contact_create(request: HttpRequest) -> HttpResponse:
    form = ContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            contact = services.contact_create(
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                attributes=form.attributes(),
                language=data["language"],
                timezone_name=data["timezone"],
                list_ids=[m.pk for m in data["lists"]],
                consent_ip=_client_ip(request),
                by=request.user,
            )
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Added {contact.email}.")
            return redirect("contacts:detail", contact.pk)
    return render(request, "contacts/contact_form.html", {"form": form})


def _runs_url(contact_id: int) -> str:
    """The contact's automation runs, a fragment automations serves (named by URL: contacts imports no app)."""
    try:
        return reverse("automations:contact-runs", args=[contact_id])
    except NoReverseMatch:
        return ""


def _welcome_url() -> str:
    """The welcome-series recipe (automations), linked from each list as its welcome mail."""
    try:
        return reverse("automations:recipe", args=["welcome"])
    except NoReverseMatch:
        return ""


def _confirmation_url(list_id: int) -> str:
    """Delivery's fragment for the list's confirmation mail (contacts names it, never imports it)."""
    try:
        return reverse("delivery:list-confirmation", args=[list_id])
    except NoReverseMatch:
        return ""


def _timeline_url(contact_id: int) -> str:
    try:
        return reverse("delivery:contact-timeline", args=[contact_id])
    except NoReverseMatch:
        return ""


@requires("view_dashboard")
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _post_requires_editor(request)
    contact = get_object_or_404(Contact, pk=pk)
    fields = list(CustomField.objects.order_by("name"))
    initial = {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "language": contact.language,
        "timezone": contact.timezone,
        "status": contact.status,
    }
    for field in fields:
        initial[f"attr_{field.name}"] = contact.attributes.get(field.name)
    form = ContactEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.contact_update(
                contact,
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                attributes={**_undeclared(contact, fields), **form.attributes()},
                language=form.cleaned_data["language"],
                timezone_name=form.cleaned_data["timezone"],
                status=form.cleaned_data["status"],
                by=request.user,
            )
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("contacts:detail", contact.pk)
    context = {
        "contact": contact,
        "form": form,
        "fields": [(f, contact.attributes.get(f.name)) for f in fields],
        "other_attributes": _undeclared(contact, fields),
        "subscriptions": selectors.subscriptions_of(contact),
        "other_lists": MailingList.objects.exclude(subscriptions__contact=contact).order_by("name"),
        "timeline_url": _timeline_url(contact.pk),
        "address_flags": address_flags(contact.email),
        "runs_url": _runs_url(contact.pk),
        "preferences_url": tokens.preferences_url(contact.pk),
        "can_edit": _editor(request),
    }
    return render(request, "contacts/contact_detail.html", context)


def _undeclared(contact: Contact, fields: list[CustomField]) -> dict[str, Any]:
    names = {f.name for f in fields}
    return {k: v for k, v in contact.attributes.items() if k not in names}


@require_POST
@requires("manage_contacts")
def contact_subscribe(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=pk)
    mailing_list = get_object_or_404(MailingList, pk=_int(request.POST.get("list")) or 0)
    services.contact_subscribe(contact, mailing_list, confirmed=True, source="dashboard", by=request.user)
    messages.success(request, f"Subscribed to {mailing_list.name}.")
    return redirect("contacts:detail", contact.pk)


@require_POST
@requires("manage_contacts")
def contact_unsubscribe(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=pk)
    list_id = _int(request.POST.get("list"))
    services.contact_unsubscribe(
        contact.pk, list_ids=[list_id] if list_id else None, source="dashboard", by=request.user
    )
    messages.success(request, "Unsubscribed." if list_id else "Unsubscribed from every list.")
    return redirect("contacts:detail", contact.pk)


@requires("manage_contacts")
def contact_export(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=pk)
    data = services.contact_export_data(contact, by=request.user)
    response = HttpResponse(json.dumps(data, indent=2, default=str), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}.json"'
    return response


@require_POST
@requires("manage_contacts")
def contact_erase(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=pk)
    if request.POST.get("confirm_email", "").strip().lower() != contact.email.lower():
        messages.error(request, "Type the contact's address to confirm the erasure.")
        return redirect("contacts:detail", contact.pk)
    services.contact_erase(contact, by=request.user)
    messages.success(request, "The contact and all their data were erased.")
    return redirect("contacts:index")


# --- Lists ---


@requires("view_dashboard")
def lists(request: HttpRequest) -> HttpResponse:
    _post_requires_editor(request)
    form = MailingListForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        mailing_list = services.mailing_list_save(None, **form.cleaned_data, by=request.user)
        messages.success(request, f"Created the list {mailing_list.name}.")
        return redirect("contacts:lists")
    return render(
        request,
        "contacts/lists.html",
        {
            "lists": selectors.mailing_lists_with_counts(),
            "form": form,
            "can_edit": _editor(request),
            "welcome_url": _welcome_url(),
        },
    )


@requires("manage_contacts")
def list_edit(request: HttpRequest, pk: int) -> HttpResponse:
    mailing_list = get_object_or_404(MailingList, pk=pk)
    form = MailingListForm(request.POST or None, instance=mailing_list)
    if request.method == "POST" and form.is_valid():
        services.mailing_list_save(mailing_list, **form.cleaned_data, by=request.user)
        messages.success(request, "Saved.")
        return redirect("contacts:lists")
    subscribe_url = settings.SITE_URL + reverse("contacts:subscribe", args=[mailing_list.public_id])
    return render(
        request,
        "contacts/list_form.html",
        {
            "form": form,
            "list": mailing_list,
            "subscribe_url": subscribe_url,
            "welcome_url": _welcome_url(),
            "confirmation_url": _confirmation_url(mailing_list.pk),
        },
    )


@require_POST
@requires("manage_contacts")
def list_delete(request: HttpRequest, pk: int) -> HttpResponse:
    mailing_list = get_object_or_404(MailingList, pk=pk)
    services.mailing_list_delete(mailing_list, by=request.user)
    messages.success(request, f"Deleted the list {mailing_list.name}; its contacts are kept.")
    return redirect("contacts:lists")


def _export_response(
    request: HttpRequest, sql: str, params: list, filename: str, target: Any
) -> HttpResponse:
    from mailplatform.services import audit_record

    audit_record(request.user, "contacts.exported", target, details={"filename": filename})
    fields = list(CustomField.objects.order_by("name").values_list("name", flat=True))
    header = ["email", "first_name", "last_name", "language", "timezone", "status", "created_at", *fields]

    def rows() -> Iterator[str]:
        buffer = _Echo()
        writer = csv.writer(buffer)
        yield writer.writerow(header)
        for email, first, last, language, zone, status, created, attributes in selectors.contacts_export_rows(
            sql, params
        ):
            values = [email, first, last, language, zone, status, created.isoformat()]
            values += [(attributes or {}).get(name, "") for name in fields]
            yield writer.writerow([neutralise_cell(v) for v in values])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


@requires("manage_contacts")
def list_export(request: HttpRequest, pk: int) -> HttpResponse:
    mailing_list = get_object_or_404(MailingList, pk=pk)
    sql = "SELECT s.contact_id FROM contacts_subscription s WHERE s.mailing_list_id = %s AND s.status = 'confirmed'"
    return _export_response(request, sql, [mailing_list.pk], f"list-{mailing_list.pk}.csv", mailing_list)


# --- Custom fields ---


@requires("view_dashboard")
def fields(request: HttpRequest) -> HttpResponse:
    _post_requires_editor(request)
    form = CustomFieldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        field = services.custom_field_create(
            name=form.cleaned_data["name"],
            label=form.cleaned_data["label"],
            field_type=form.cleaned_data["type"],
            by=request.user,
        )
        messages.success(request, f"Field added: {field.label}, used in templates as contact.{field.name}.")
        return redirect("contacts:fields")
    return render(
        request,
        "contacts/fields.html",
        {"fields": CustomField.objects.order_by("name"), "form": form, "can_edit": _editor(request)},
    )


@requires("manage_contacts")
def field_edit(request: HttpRequest, pk: int) -> HttpResponse:
    field = get_object_or_404(CustomField, pk=pk)
    usage = services.custom_field_usage(field)
    locked = usage["contacts"] > 0
    form = CustomFieldForm(request.POST or None, instance=field, key_locked=locked, type_locked=locked)
    if request.method == "POST" and form.is_valid():
        try:
            services.custom_field_update(
                CustomField.objects.get(pk=pk),
                label=form.cleaned_data["label"],
                name=form.cleaned_data["name"],
                field_type=form.cleaned_data["type"],
                by=request.user,
            )
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(request, "Field saved.")
            return redirect("contacts:fields")
    field.refresh_from_db()
    holders = usage["contacts"]
    question = (
        f"Delete the field {field.label}? "
        + (f"{holders} contact{'s' if holders != 1 else ''} hold{'' if holders != 1 else 's'} a value for it; "
           "the values are deleted with it. " if holders else "No contact holds a value for it. ")
        + "This cannot be undone."
    )  # fmt: skip
    return render(
        request,
        "contacts/field_form.html",
        {"form": form, "field": field, "usage": usage, "delete_question": question},
    )


@require_POST
@requires("manage_contacts")
def field_delete(request: HttpRequest, pk: int) -> HttpResponse:
    field = get_object_or_404(CustomField, pk=pk)
    try:
        removed = services.custom_field_delete(field, by=request.user)
    except PlatformError as exc:
        message_error(request, exc)
        return redirect("contacts:field-edit", pk=pk)
    messages.success(request, f"Deleted the field {field.label} and {removed} contact value(s).")
    return redirect("contacts:fields")


# --- Segments ---


@requires("view_dashboard")
def segments(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "contacts/segments.html",
        {"segments": Segment.objects.order_by("name"), "can_edit": _editor(request)},
    )


@requires("manage_contacts")
def segment_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk) if pk else None
    form = SegmentForm(request.POST or None, instance=segment)
    rule_error = None
    if request.method == "POST":
        rules = rules_from_post(request.POST)
        if form.is_valid():
            try:
                segment = services.segment_save(
                    segment,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    rules=rules,
                    by=request.user,
                )
            except SegmentError as exc:
                if exc.condition is None:
                    form.add_error(None, str(exc))
                else:  # drawn on the condition's own row
                    rule_error = exc
                    form.add_error(None, "One of the rules needs fixing: see below.")
            except IntegrityError:
                form.add_error("name", "A segment with this name exists.")
            else:
                messages.success(request, f"Saved the segment {segment.name}.")
                return redirect("contacts:segments")
    else:
        rules = (segment.rules if segment else None) or {
            "match": "all",
            "groups": [{"match": "all", "conditions": [{"field": "email", "op": "contains", "value": ""}]}],
        }
    context = {"form": form, "segment": segment, **builder_context(rules, rule_error)}
    return render(request, "contacts/segment_form.html", context)


@require_POST
@requires("manage_contacts")
def segment_builder(request: HttpRequest) -> HttpResponse:
    """Redraw the builder after adding or removing a condition or group, or changing a field."""
    rules = rules_from_post(request.POST)
    action = request.POST.get("builder_action", "")
    if action == "add_group":
        rules["groups"].append(
            {"match": "all", "conditions": [{"field": "email", "op": "contains", "value": ""}]}
        )
    elif action.startswith("add_condition:"):
        index = _int(action.split(":", 1)[1])
        if index is not None and 0 <= index < len(rules["groups"]):
            rules["groups"][index]["conditions"].append({"field": "email", "op": "contains", "value": ""})
    return render(request, "contacts/_segment_builder.html", builder_context(rules))


@require_POST
@requires("view_dashboard")
def segment_count(request: HttpRequest) -> HttpResponse:
    try:
        count = selectors.segment_count(rules_from_post(request.POST))
        return HttpResponse(f"<strong>{count:,}</strong> contacts match")
    except SegmentError as exc:
        from django.utils.html import escape

        return HttpResponse(f'<span class="pill bad">{escape(str(exc))}</span>')


@require_POST
@requires("manage_contacts")
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    services.segment_delete(segment, by=request.user)
    messages.success(request, f"Deleted the segment {segment.name}.")
    return redirect("contacts:segments")


@requires("manage_contacts")
def segment_export(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    try:
        sql, params = selectors.segment_contact_ids_sql(segment.pk)
    except SegmentError as exc:
        messages.error(request, f"That segment cannot be exported: {exc}")
        return redirect("contacts:segments")
    return _export_response(request, sql, params, f"segment-{segment.pk}.csv", segment)


# --- Suppressions ---


@requires("view_dashboard")
def suppressions(request: HttpRequest) -> HttpResponse:
    _post_requires_editor(request)
    form = SuppressionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            suppression = services.suppression_add(
                form.cleaned_data["value"],
                reason=form.cleaned_data["reason"] or "added by hand",
                source="dashboard",
                by=request.user,
            )
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Suppressed {suppression.kind} {suppression.value}.")
            return redirect("contacts:suppressions")
    query = request.GET.get("q", "").strip().lower()[:320]
    items = Suppression.objects.all()
    if query:
        items = items.filter(value__startswith=query)
    return render(
        request,
        "contacts/suppressions.html",
        {"suppressions": items[:200], "form": form, "q": query, "can_edit": _editor(request)},
    )


@require_POST
@requires("manage_contacts")
def suppression_delete(request: HttpRequest, pk: int) -> HttpResponse:
    suppression = get_object_or_404(Suppression, pk=pk)
    services.suppression_remove(suppression, by=request.user)
    messages.success(request, f"{suppression.value} is no longer suppressed.")
    return redirect("contacts:suppressions")


# --- Imports ---


@requires("view_dashboard")
def imports(request: HttpRequest) -> HttpResponse:
    _post_requires_editor(request)
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        path = services.import_upload_save(upload)
        try:
            fmt, _ = preview(path)
        except ImportFileError as exc:
            path.unlink(missing_ok=True)
            form.add_error("file", str(exc))
        else:
            contact_import = services.contact_import_create(
                path=str(path),
                filename=Path(upload.name).name,
                mode="upsert",
                mapping=suggest_mapping(fmt.headers),
                by=request.user,
                draft=True,
            )
            return redirect("contacts:import-detail", contact_import.pk)
    return render(
        request,
        "contacts/imports.html",
        {"imports": selectors.recent_imports(), "form": form, "can_edit": _editor(request)},
    )


def _mapping_choices(headers: list[str]) -> list[tuple[str, str]]:
    choices = [
        ("", "— skip —"),
        ("email", "Email"),
        ("first_name", "First name"),
        ("last_name", "Last name"),
        ("language", "Language"),
        ("timezone", "Time zone"),
    ]
    known = set()
    for field in CustomField.objects.order_by("name"):
        choices.append((f"attr:{field.name}", f"{field.label or field.name} ({field.get_type_display()})"))
        known.add(field.name)
    for index, header in enumerate(headers):
        name = field_name_for(header, index)
        if name not in known:
            known.add(name)
            choices.append((f"attr:{name}", f"new text field “{name}”"))
    return choices


@requires("view_dashboard")
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _post_requires_editor(request)
    contact_import = get_object_or_404(ContactImport, pk=pk)
    context: dict[str, Any] = {"import": contact_import, "can_edit": _editor(request)}
    if contact_import.status == ImportStatus.DRAFT:
        try:
            fmt, sample = preview(Path(contact_import.path))
        except (ImportFileError, OSError) as exc:
            context["error"] = str(exc)
            return render(request, "contacts/import_detail.html", context)
        form = ImportStartForm(request.POST or None)
        choices = _mapping_choices(fmt.headers)
        valid_targets = {value for value, _ in choices}
        mapping = dict(contact_import.mapping)
        if request.method == "POST":
            mapping = {}
            for index in range(len(fmt.headers)):
                target = request.POST.get(f"col{index}", "")
                mapping[str(index)] = target if target in valid_targets else ""
            targets = [t for t in mapping.values() if t]
            if "email" not in targets:
                form.add_error(None, "Choose which column holds the email address.")
            elif len(targets) != len(set(targets)):
                form.add_error(None, "Two columns are mapped to the same field.")
            elif form.is_valid():
                list_ids = [m.pk for m in form.cleaned_data["lists"]]
                if form.cleaned_data["new_list"].strip():
                    list_ids.append(
                        services.mailing_list_get_or_create(
                            form.cleaned_data["new_list"].strip(), by=request.user
                        ).pk
                    )
                services.contact_import_start(
                    contact_import,
                    mode=form.cleaned_data["mode"],
                    list_ids=list_ids,
                    mapping=mapping,
                    by=request.user,
                    drop_flagged=form.cleaned_data["drop_flagged"],
                )
                return redirect("contacts:import-detail", contact_import.pk)
        columns = [
            {
                "index": i,
                "header": h,
                "target": mapping.get(str(i), ""),
                "samples": [row[i] if i < len(row) else "" for row in sample],
            }
            for i, h in enumerate(fmt.headers)
        ]
        context.update(form=form, columns=columns, choices=choices, fmt=fmt)
    return render(request, "contacts/import_detail.html", context)


@requires("view_dashboard")
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    contact_import = get_object_or_404(ContactImport, pk=pk)
    live = services.import_progress(pk) if contact_import.status == ImportStatus.RUNNING else None
    response = render(request, "contacts/_import_progress.html", {"import": contact_import, "live": live})
    if contact_import.status in (ImportStatus.DONE, ImportStatus.FAILED):
        response["HX-Refresh"] = "true"  # show the final counts and the report link
    return response


@requires("view_dashboard")
def import_report(request: HttpRequest, pk: int) -> HttpResponse:
    contact_import = get_object_or_404(ContactImport, pk=pk)
    path = Path(contact_import.report_path) if contact_import.report_path else None
    if (
        path is None
        or not path.is_file()
        or Path(settings.MEDIA_ROOT).resolve() not in path.resolve().parents
    ):
        raise Http404("This import has no bad-rows report.")
    return FileResponse(path.open("rb"), as_attachment=True, filename=f"import-{pk}-bad-rows.csv")


# --- Preview data for the template editor (templates names this URL; it imports nothing) ---


@requires("view_dashboard")
def preview_data(request: HttpRequest) -> HttpResponse:
    """GET ?q=<email>: {"contact": merge data} for one contact, or 404."""
    from django.http import JsonResponse

    contact = selectors.contact_by_email(request.GET.get("q", "")[:320])
    if contact is None:
        raise Http404("No contact with that address.")
    data = selectors.contact_merge_data([contact.pk])[contact.pk]
    return JsonResponse({"contact": data}, json_dumps_params={"default": str})


# --- Home fragment ---


@requires("view_dashboard")
def home_fragment(request: HttpRequest) -> HttpResponse:
    growth = selectors.list_growth(30)
    peak = max([max(d["joined"], d["left"]) for d in growth] + [1])
    bars = []
    for i, day in enumerate(growth):
        joined_h, left_h = round(40 * day["joined"] / peak), round(40 * day["left"] / peak)
        bars.append(
            {
                **day,
                "x": i * 8,
                "joined_h": joined_h,
                "joined_y": 44 - joined_h,
                "left_h": left_h,
                "left_y": 44 - left_h,
            }
        )
    context = {
        "counts": selectors.contact_counts(),
        "bars": bars,
        "joined": sum(d["joined"] for d in growth),
        "left": sum(d["left"] for d in growth),
        "lists": MailingList.objects.count(),
    }
    return render(request, "contacts/_home_fragment.html", context)


# --- Public pages: no login; signed links; the same answer whatever the address ---


def _public(view):
    view.public_endpoint = True
    return view


def _rate_limited(request: HttpRequest, scope: str) -> bool:
    key = f"contacts:public-rate:{scope}:{_client_ip(request) or 'unknown'}"
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:
        count = 1
    return count > settings.CONTACTS_SUBSCRIBE_RATE_PER_HOUR


@_public
def subscribe(request: HttpRequest, public_id: str) -> HttpResponse:
    mailing_list = MailingList.objects.filter(public_id=public_id, is_public=True).first()
    if mailing_list is None:
        raise Http404("No such list.")
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    form = SubscribeForm(request.POST or None)
    if request.method == "POST":
        if _rate_limited(request, "subscribe"):
            return render(request, "contacts/public/rate_limited.html", status=429)
        if form.is_valid():
            from contacts.signup import SignupRefused, check_name

            # The signup forms' name check (contacts.signup): no links or markup in a name, which
            # would reach the confirmation mail. (This page keeps its own per-network limit above.)
            try:
                check_name(form.cleaned_data["first_name"], "first_name")
            except SignupRefused as exc:
                return render(
                    request, "contacts/public/signup_refused.html", {"refused": str(exc)}, status=400
                )
            if not form.cleaned_data["website"]:  # the honeypot: bots get the same page, nothing stored
                try:
                    services.public_subscribe(
                        mailing_list,
                        email=form.cleaned_data["email"],
                        first_name=form.cleaned_data["first_name"],
                        ip_address=_client_ip(request),
                    )
                except EmailError:
                    pass
            return render(request, "contacts/public/subscribe_done.html", {"list": mailing_list})
    return render(request, "contacts/public/subscribe.html", {"list": mailing_list, "form": form})


@_public
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    subscription_id = tokens.confirm_subscription_id(token)
    if subscription_id is None:
        return render(request, "contacts/public/invalid_link.html", status=404)
    if request.method == "POST":
        subscription = services.subscription_confirm(subscription_id, ip_address=_client_ip(request))
        if subscription is None:
            return render(request, "contacts/public/invalid_link.html", status=404)
        return render(
            request,
            "contacts/public/confirmed.html",
            {
                "list": subscription.mailing_list,
                "preferences_url": tokens.preferences_url(subscription.contact_id),
            },
        )
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    # GET only shows a button: mail scanners that follow links must not confirm for the person.
    return render(request, "contacts/public/confirm.html", {"token": token})


@_public
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    contact_id = tokens.preferences_contact_id(token)
    contact = Contact.objects.filter(pk=contact_id).first() if contact_id else None
    if contact is None:
        return render(request, "contacts/public/invalid_link.html", status=404)
    if request.method == "POST":
        services.preferences_save(
            contact,
            list_ids=[i for i in (_int(v) for v in request.POST.getlist("lists")) if i],
            unsubscribe_all=bool(request.POST.get("unsubscribe_all")),
            ip_address=_client_ip(request),
        )
        messages.success(request, "Your preferences were saved.")
        return redirect("contacts:preferences", token)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    subscribed = dict(contact.subscriptions.values_list("mailing_list_id", "status"))
    shown = MailingList.objects.filter(pk__in=subscribed.keys()) | MailingList.objects.filter(is_public=True)
    rows = [
        {"list": m, "checked": subscribed.get(m.pk) in ("confirmed", "unconfirmed")}
        for m in shown.distinct().order_by("name")
    ]
    return render(
        request,
        "contacts/public/preferences.html",
        {
            "rows": rows,
            "contact": contact,
            "unsubscribed": contact.status != ContactStatus.ACTIVE,
            "now": timezone.now(),
        },
    )


# --- Signup forms (contacts.signup): the dashboard's builder, and the public form ---


@requires("view_dashboard")
def signup_forms(request: HttpRequest) -> HttpResponse:
    _post_requires_editor(request)
    form = SignupFormForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        lists = data.pop("lists")
        try:
            signup = services.signup_form_save(None, by=request.user, lists=lists, **data)
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(
                request, f"Created the signup form {signup.name}: embed it with one of the codes below."
            )
            return redirect("contacts:signup-form-edit", pk=signup.pk)
    return render(
        request,
        "contacts/signup_forms.html",
        {"signups": SignupForm.objects.prefetch_related("lists"), "form": form, "can_edit": _editor(request)},
    )


def _embed_codes(signup: SignupForm) -> dict[str, str]:
    from django.templatetags.static import static

    base = settings.SITE_URL
    hosted = base + reverse("contacts:signup", args=[signup.public_id])
    frame = base + reverse("contacts:signup-frame", args=[signup.public_id])
    context = {
        "signup": signup,
        "submit_url": base + reverse("contacts:signup-submit", args=[signup.public_id]),
        "challenge_url": base + reverse("contacts:signup-challenge", args=[signup.public_id]),
        "widget": signup_widget(),
        "stamp": "",
    }
    from django.template.loader import render_to_string

    fields = render_to_string("contacts/public/_signup_fields.html", context).replace(
        '  <input type="hidden" name="_ts" value="">\n', ""
    )
    widget = context["widget"]
    script = ""
    if widget["kind"] == "altcha":
        script = f'<script async defer src="{base}{static("contacts/altcha-3.2.2.umd.min.js")}"></script>\n'
    elif widget["kind"]:
        script = f'<script async defer src="{widget["script"]}"></script>\n'
    return {
        "hosted": hosted,
        "iframe": f'<iframe src="{frame}" title="{signup.name}" style="border:0;width:100%;min-height:420px"></iframe>',
        "html": fields.strip() + "\n" + script,
    }


@requires("manage_contacts")
def signup_form_edit(request: HttpRequest, pk: int) -> HttpResponse:
    signup = get_object_or_404(SignupForm, pk=pk)
    form = SignupFormForm(request.POST or None, instance=signup)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        lists = data.pop("lists")
        try:
            services.signup_form_save(signup, by=request.user, lists=lists, **data)
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("contacts:signup-form-edit", pk=signup.pk)
    return render(
        request, "contacts/signup_form.html", {"signup": signup, "form": form, "codes": _embed_codes(signup)}
    )


def signup_widget() -> dict[str, str]:
    from contacts.signup import widget

    return widget()


def _public_signup(public_id: str) -> SignupForm:
    signup = SignupForm.objects.filter(public_id=public_id).first()
    if signup is None:
        raise Http404("No such form.")
    return signup


def _signup_page(
    request: HttpRequest, signup: SignupForm, *, refused: str = "", status: int = 200
) -> HttpResponse:
    from contacts.signup import render_stamp

    widget = signup_widget()
    response = render(
        request,
        "contacts/public/signup.html",
        {
            "signup": signup,
            "refused": refused,
            "stamp": render_stamp(str(signup.public_id)),
            "submit_url": reverse("contacts:signup-submit", args=[signup.public_id]),
            "challenge_url": reverse("contacts:signup-challenge", args=[signup.public_id]),
            "widget": widget,
        },
        status=status,
    )
    # The ALTCHA widget solves its proof of work in Web Workers it starts from blob: URLs; hCaptcha
    # and Turnstile load their script and frame from their own origin.
    update: dict[str, list[str]] = {"worker-src": ["'self'", "blob:"]}
    if widget["kind"] not in ("altcha", ""):
        origin = [widget["origin"]]
        update.update({"script-src": origin, "frame-src": origin, "connect-src": origin})
    response._csp_update = update  # type: ignore[attr-defined]
    return response


@_public
def signup(request: HttpRequest, public_id: str) -> HttpResponse:
    """The hosted signup page."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    return _signup_page(request, _public_signup(public_id))


@_public
@xframe_options_exempt
def signup_frame(request: HttpRequest, public_id: str) -> HttpResponse:
    """The form for an iframe: only the form's allowed origins may frame it (CSP frame-ancestors)."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    signup = _public_signup(public_id)
    response = _signup_page(request, signup)
    response._csp_replace = {"frame-ancestors": ["'self'", *signup.origins]}  # type: ignore[attr-defined]
    return response


@_public
def signup_challenge(request: HttpRequest, public_id: str) -> HttpResponse:
    """A fresh ALTCHA challenge for the widget; any site may fetch it (the snippet runs on theirs)."""
    from contacts.signup import challenge

    signup = _public_signup(public_id)
    response = JsonResponse(challenge(str(signup.public_id)))
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "no-store"
    return response


@_public
@csrf_exempt
def signup_submit(request: HttpRequest, public_id: str) -> HttpResponse:
    """A signup form's post, from our pages or from the snippet on another site: no CSRF cookie (the
    form is signed and proof-of-worked instead; contacts.signup). Refused: says why, stores nothing."""
    from contacts.signup import SignupRefused

    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    signup = _public_signup(public_id)
    try:
        services.signup_submit(signup, request.POST, ip_address=_client_ip(request))
    except SignupRefused as exc:
        back = request.headers.get("Referer") or reverse("contacts:signup", args=[signup.public_id])
        status = 429 if exc.code == "rate_limited" else 400
        return render(
            request, "contacts/public/signup_refused.html", {"refused": str(exc), "back": back}, status=status
        )
    if signup.redirect_url:
        return redirect(signup.redirect_url)
    return render(request, "contacts/public/signup_done.html", {"signup": signup})
