"""The campaign dashboard: list, wizard (content, audience, settings, review), progress, reports."""

from __future__ import annotations

import csv
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from campaigns import charts, selectors, services
from campaigns.forms import AudienceForm, ConfirmForm, ContentForm, ScheduleForm, SettingsForm, TestSendForm
from campaigns.models import Campaign, CampaignState
from contacts.imports import neutralise_cell
from delivery import selectors as delivery_selectors
from mailplatform.errors import PlatformError, form_error, message_error
from mailplatform.permissions import requires
from mailplatform.roles import can

STEPS = [
    ("content", "Content", ContentForm),
    ("audience", "Audience", AudienceForm),
    ("settings", "Settings", SettingsForm),
]
STEP_NAMES = [s[0] for s in STEPS] + ["review"]


@requires("view_dashboard")
def index(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    if state not in CampaignState.values:
        state = ""
    return render(
        request,
        "campaigns/index.html",
        {"campaigns": selectors.campaign_list(state=state), "state": state, "states": CampaignState.choices},
    )


@requires("manage_campaigns")
@require_POST
def create(request: HttpRequest) -> HttpResponse:
    try:
        campaign = services.campaign_create(name=request.POST.get("name", ""), by=request.user)
    except PlatformError as exc:
        message_error(request, exc)
        return redirect("campaigns:index")
    return redirect("campaigns:step", pk=campaign.pk, step="content")


@requires("manage_campaigns")
def step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if step == "review":
        return review(request, campaign)
    found = next((s for s in STEPS if s[0] == step), None)
    if found is None:
        raise Http404("no such step")
    if not campaign.editable:
        messages.error(
            request, f"This campaign is {campaign.get_state_display().lower()}: it can no longer be edited."
        )
        return redirect("campaigns:detail", pk=pk)
    form_class = found[2]
    options = {"ab_test": campaign.ab_test} if form_class is SettingsForm else {}
    if request.method == "POST":
        form = form_class(request.POST, **options)
        if form.is_valid():
            try:
                changes = form.changes()
                services.campaign_update(pk, by=request.user, **changes)
            except PlatformError as exc:
                form_error(form, exc)
            else:
                return redirect("campaigns:step", pk=pk, step=STEP_NAMES[STEP_NAMES.index(step) + 1])
    else:
        form = form_class(initial=form_class.initial_for(campaign), **options)
    context: dict[str, Any] = {"campaign": campaign, "form": form, "step": step, "steps": _steps(step)}
    if step == "audience":
        context["count"] = selectors.audience_count(campaign) if campaign.lists.exists() else 0
    return render(request, f"campaigns/step_{step}.html", context)


def _steps(current: str) -> list[dict[str, Any]]:
    labels = [(s[0], s[1]) for s in STEPS] + [("review", "Review")]
    return [{"name": name, "label": label, "current": name == current} for name, label in labels]


def _int_list(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit()]


@requires("manage_campaigns")
def audience_count(request: HttpRequest, pk: int) -> HttpResponse:
    """Live count for the audience step: the form's current choices, after suppressions and the cap."""
    campaign = get_object_or_404(Campaign, pk=pk)
    list_ids = _int_list(request.GET.getlist("lists"))
    segment = request.GET.get("segment", "")
    cap = request.GET.get("frequency_cap_hours", "0")
    count = None
    if list_ids:
        count = selectors.count(
            selectors.audience(
                list_ids=list_ids,
                segment_id=int(segment) if segment.isdigit() else None,
                exclude_list_ids=_int_list(request.GET.getlist("exclude_lists")),
                frequency_cap_hours=min(int(cap), 24 * 90) if cap.isdigit() else 0,
                rules=campaign.audience_rules or None,
            )
        )
    return render(request, "campaigns/count_fragment.html", {"count": count})


@requires("manage_campaigns")
def spam_check(request: HttpRequest, pk: int) -> HttpResponse:
    """The review page's SpamAssassin card, loaded after the page (one run takes seconds)."""
    campaign = get_object_or_404(Campaign, pk=pk)
    return render(request, "campaigns/spam_fragment.html", {"reports": selectors.spam_reports(campaign)})


def review(
    request: HttpRequest, campaign: Campaign, *, test_form: TestSendForm | None = None, status: int = 200
) -> HttpResponse:
    from templates.compiler import TemplateError
    from templates.selectors import template_checks

    preview_as = request.GET.get("preview_as", "").strip()[:254]
    if preview_as == "first":
        preview_as = selectors.first_recipient_email(campaign) or ""
    contact = selectors.preview_contact(preview_as) if preview_as else None
    arms = list(campaign.variants.all()) if campaign.ab_test else [None]
    previews = []
    for arm in arms:
        try:
            compiled, rendered = selectors.compiled_for(campaign, arm, contact)
            previews.append(
                {
                    "variant": arm,
                    "rendered": rendered,
                    "checks": template_checks(compiled, transactional=False),
                }
            )
        except TemplateError as exc:
            previews.append({"variant": arm, "error": str(exc)})
    count = selectors.audience_count(campaign) if campaign.lists.exists() else 0
    return render(
        request,
        "campaigns/step_review.html",
        {
            "campaign": campaign,
            "step": "review",
            "steps": _steps("review"),
            "previews": previews,
            "preview_as": preview_as,
            "preview_contact_found": contact is not None,
            "count": count,
            "problems": selectors.campaign_problems(campaign, count=count),
            "from_standing": selectors.from_standing(campaign.from_email) if campaign.from_email else None,
            "schedule_form": ScheduleForm(initial={"timezone": campaign.schedule_timezone or "UTC"}),
            "test_form": test_form or TestSendForm(initial={"to": request.user.email}),
        },
        status=status,
    )


@requires("send_mail")
@require_POST
def test_send(request: HttpRequest, pk: int) -> HttpResponse:
    """A failed test draws the review again with what was typed and the error under its field."""
    from templates.compiler import TemplateError

    campaign = get_object_or_404(Campaign, pk=pk)
    form = TestSendForm(request.POST)
    if form.is_valid():
        try:
            sent, rendered_as = services.campaign_test_send(
                pk, form.cleaned_data["to"], as_contact=form.cleaned_data["as_contact"],
                by=request.user, variant_label=form.cleaned_data["variant"],
            )  # fmt: skip
        except TemplateError as exc:
            form.add_error(None, f"Test send failed: {exc}")
        except PlatformError as exc:
            # Every other refusal is about the addresses typed, unless it names the contact.
            form.add_error("as_contact" if exc.field == "as_contact" else "to", " ".join(exc.messages))
        else:
            who = f"as {rendered_as}" if rendered_as else "with sample data (the audience is empty)"
            messages.success(request, f"Test sent to {', '.join(m.email for m in sent)}, {who}.")
            return redirect("campaigns:step", pk=pk, step="review")
    return review(request, campaign, test_form=form, status=400)


def _confirm_page(
    request: HttpRequest, campaign: Campaign, *, action: str, count: int, confirm_form: ConfirmForm,
    schedule_form: ScheduleForm | None = None, status: int = 200,
) -> HttpResponse:  # fmt: skip
    return render(
        request,
        "campaigns/confirm.html",
        {
            "campaign": campaign,
            "action": action,
            "count": count,
            "subject": campaign.subject or (campaign.template.subject if campaign.template_id else ""),
            "problems": selectors.campaign_problems(campaign, count=count),
            "confirm_form": confirm_form,
            "schedule_form": schedule_form,
        },
        status=status,
    )


def _count(campaign: Campaign) -> int:
    return selectors.audience_count(campaign) if campaign.lists.exists() else 0


@requires("send_mail")
def send(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation naming subject, audience and count. POST: send, once confirmed."""
    campaign = get_object_or_404(Campaign, pk=pk)
    count = _count(campaign)
    if request.method != "POST":
        return _confirm_page(
            request,
            campaign,
            action="send",
            count=count,
            confirm_form=ConfirmForm(campaign=campaign, count=count),
        )
    confirm_form = ConfirmForm(request.POST, campaign=campaign, count=count)
    if not confirm_form.is_valid():
        return _confirm_page(
            request, campaign, action="send", count=count, confirm_form=confirm_form, status=400
        )
    try:
        services.campaign_send_now(pk, by=request.user)
        messages.success(request, "Starting: the audience is being planned, then sending begins.")
    except PlatformError as exc:
        message_error(request, exc, "Not sent: ")
        return redirect("campaigns:step", pk=pk, step="review")
    return redirect("campaigns:detail", pk=pk)


# Which schedule form field a refusal from campaign_schedule is about (by the error's field).
_SCHEDULE_FIELDS = {"scheduled_at": "local_time", "timezone": "timezone"}


@requires("send_mail")
def schedule(request: HttpRequest, pk: int) -> HttpResponse:
    """GET (from the review's schedule form): the confirmation; POST: schedule, once confirmed."""
    campaign = get_object_or_404(Campaign, pk=pk)
    count = _count(campaign)
    data = request.POST if request.method == "POST" else request.GET
    schedule_form = ScheduleForm(data or None, initial={"timezone": campaign.schedule_timezone or "UTC"})
    if request.method != "POST":
        schedule_form.is_valid()  # the review's choice, with its errors beside the fields
        confirm_form = ConfirmForm(campaign=campaign, count=count)
        return _confirm_page(
            request,
            campaign,
            action="schedule",
            count=count,
            confirm_form=confirm_form,
            schedule_form=schedule_form,
        )
    confirm_form = ConfirmForm(request.POST, campaign=campaign, count=count)
    if schedule_form.is_valid() and confirm_form.is_valid():
        try:
            services.campaign_schedule(
                pk,
                local_time=schedule_form.cleaned_data["local_time"].replace(tzinfo=None),
                tz_name=schedule_form.cleaned_data["timezone"],
                by=request.user,
            )
        except PlatformError as exc:
            schedule_form.add_error(_SCHEDULE_FIELDS.get(exc.field), " ".join(exc.messages))
        else:
            messages.success(request, "Scheduled.")
            return redirect("campaigns:detail", pk=pk)
    return _confirm_page(
        request, campaign, action="schedule", count=count, confirm_form=confirm_form,
        schedule_form=schedule_form, status=400,
    )  # fmt: skip


@requires("view_dashboard")
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    return render(
        request,
        "campaigns/detail.html",
        {
            "campaign": campaign,
            "perms_send_mail": can(request.user, "send_mail"),
            "archive_on": settings.CAMPAIGNS_ARCHIVE,
            "resend_delays": RESEND_DELAYS,
            "progress": selectors.campaign_progress(campaign),
            "report": delivery_selectors.mailing_figures(selectors.campaign_mailing_ids(campaign)),
        },
    )


@requires("view_dashboard")
def progress_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if request.GET.get("starting") and not campaign.starting:
        # Started (or stopped) since the page was drawn: its report and actions change too.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    if campaign.state == CampaignState.SENDING:
        # Move it forward now rather than at the next beat, so the page shows "sent" promptly.
        services.campaign_sync(pk)
        campaign.refresh_from_db()
    return render(
        request,
        "campaigns/progress_fragment.html",
        {
            "campaign": campaign,
            "progress": selectors.campaign_progress(campaign),
            # Delivered, opened… redrawn with the bar: they agree with it without a reload.
            "report": delivery_selectors.mailing_figures(selectors.campaign_mailing_ids(campaign)),
        },
    )


def _archive_publish(pk: int, *, by: Any) -> Any:
    from campaigns.archive import archive_publish

    return archive_publish(pk, by=by)


def _archive_remove(pk: int, *, by: Any) -> Any:
    from campaigns.archive import archive_remove

    return archive_remove(pk, by=by)


_ACTIONS = {
    "archive": (_archive_publish, "Published to the public archive."),
    "unarchive": (_archive_remove, "Removed from the public archive."),
    "pause": (services.campaign_pause, "Paused."),
    "resume": (services.campaign_resume, "Resumed."),
    "cancel": (services.campaign_cancel, "Cancelled."),
    "unschedule": (
        services.campaign_unschedule,
        "Back to draft: it will not be sent until you schedule or send it.",
    ),
}


RESEND_DELAYS = [(0, "as soon as possible"), (1, "1 hour"), (6, "6 hours"), (24, "1 day"), (48, "2 days"),
                 (72, "3 days"), (168, "1 week")]  # fmt: skip


@requires("send_mail")
@require_POST
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    """Resend to non-openers: a follow-up campaign, scheduled after the chosen delay."""
    get_object_or_404(Campaign, pk=pk)
    delay = request.POST.get("delay_hours", "").strip()
    try:
        follow_up = services.campaign_resend_to_non_openers(
            pk,
            subject=request.POST.get("subject", ""),
            delay_hours=int(delay) if delay.isdigit() else -1,
            by=request.user,
        )
    except PlatformError as exc:
        message_error(request, exc, "Not resent: ")
        return redirect("campaigns:detail", pk=pk)
    messages.success(
        request,
        f"Scheduled for {follow_up.scheduled_at:%Y-%m-%d %H:%M} UTC: the contacts who received the "
        "campaign and did not open it, as they are then. You can still edit or unschedule it.",
    )
    return redirect("campaigns:detail", pk=follow_up.pk)


@requires("send_mail")
@require_POST
def action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    get_object_or_404(Campaign, pk=pk)
    if action == "clone":
        copy = services.campaign_clone(pk, by=request.user)
        messages.success(request, "Cloned: this is the copy, a draft.")
        return redirect("campaigns:step", pk=copy.pk, step="content")
    if action == "delete":
        try:
            services.campaign_delete(pk, by=request.user)
        except PlatformError as exc:
            message_error(request, exc)
            return redirect("campaigns:detail", pk=pk)
        messages.success(request, "Deleted.")
        return redirect("campaigns:index")
    if action == "resume-group":
        group = request.POST.get("group", "").strip().lower()
        try:
            back = services.campaign_resume_group(pk, group, by=request.user)
            messages.success(
                request, f"{group} resumed: {back} message{'s' if back != 1 else ''} back in the queue."
            )
        except PlatformError as exc:
            message_error(request, exc)
        return redirect("campaigns:detail", pk=pk)
    if action not in _ACTIONS:
        raise Http404("unknown action")
    service, done = _ACTIONS[action]
    try:
        service(pk, by=request.user)
        messages.success(request, done)
    except PlatformError as exc:
        message_error(request, exc)
    return redirect("campaigns:detail", pk=pk)


@requires("view_dashboard")
def report(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    data = selectors.campaign_report(campaign)
    return render(
        request,
        "campaigns/report.html",
        {
            "campaign": campaign,
            "report": data,
            "timeline_chart": charts.line_chart(
                data["timeline"], ["opens", "clicks", "machine"], title="Opens and clicks over time"
            ),
            "domain_chart": charts.bar_chart(
                data["domains"],
                label="domain",
                bars=["sent", "opened", "clicked", "bounced"],
                title="Results by recipient domain",
            ),
            "click_map": selectors.click_map(campaign, data),
            "not_received": selectors.not_received(campaign),
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@requires("view_dashboard")
def report_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    writer = csv.writer(_Echo())
    header = [
        "email",
        "variant",
        "state",
        "sent_at",
        "opened",
        "clicked",
        "machine_activity",
        "bounce",
        "unsubscribed",
        "complained",
        "reason",
    ]

    def rows():
        yield writer.writerow(header)
        for row in selectors.recipients_csv_rows(campaign):
            # Addresses and relay replies come from outside: no cell may start a formula.
            yield writer.writerow([neutralise_cell(v) for v in row])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-report.csv"'
    return response


@requires("view_dashboard")
def home_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/home_fragment.html", {"figures": selectors.home_figures()})


# What each drill-down shows: the report's figure -> (title, test on a recipient row, the segment
# rule's operator that selects the same people, or None where segment rules cannot say it).
_PEOPLE = {
    "total": ("were in the audience", lambda r: True, None),
    "sent": ("were sent the campaign", lambda r: r["state"] == "sent", "received"),
    "delivered": (
        "had it delivered (sent, not bounced)",
        lambda r: r["state"] == "sent" and not r["bounce"],
        "delivered",
    ),
    "skipped": ("were skipped (unsendable at send time)", lambda r: r["state"] == "skipped", None),
    "opened": (
        "opened it (people, not machines; a click counts as an open)",
        lambda r: r["opened"],
        "opened",
    ),
    "unique_opens": ("opened it (people and machines)", lambda r: r["any_open"], None),
    "machine_opens": ("had it opened by a privacy proxy or prefetch", lambda r: r["machine_open"], None),
    "clicked": ("clicked a link (people, not scanners)", lambda r: r["clicked"], "clicked"),
    "unique_clicks": ("clicked a link (people and scanners)", lambda r: r["any_click"], None),
    "machine_clicks": ("had a link clicked by a scanner", lambda r: r["machine_click"], None),
    "bounced": ("bounced", lambda r: bool(r["bounce"]), "bounced"),
    "hard": ("bounced hard", lambda r: r["bounce"] == "hard", None),
    "soft": ("bounced soft", lambda r: r["bounce"] == "soft", None),
    "block": ("were blocked by policy", lambda r: r["bounce"] == "block", None),
    "unsubscribed": ("unsubscribed", lambda r: r["unsubscribed"], "unsubscribed"),
    "complained": ("complained", lambda r: r["complained"], "complained"),
    "not_sent": ("were not sent it", lambda r: r["state"] != "sent", None),
}
PEOPLE_LIMIT = 1000


@requires("view_dashboard")
def report_people(request: HttpRequest, pk: int, figure: str) -> HttpResponse:
    """The contacts behind one of the report's counts (the first PEOPLE_LIMIT; the CSV has all),
    and, where segment rules can say who they are, a button that saves them as a segment."""
    campaign = get_object_or_404(Campaign, pk=pk)
    if figure not in _PEOPLE:
        raise Http404("no such figure")
    title, wanted, segment_op = _PEOPLE[figure]
    if request.method == "POST":
        if segment_op is None:
            raise Http404("these contacts cannot be described by segment rules")
        if not can(request.user, "manage_contacts"):
            raise PermissionDenied("Your role may not save segments.")
        try:
            segment = services.campaign_people_segment(campaign, segment_op, title=title, by=request.user)
        except PlatformError as exc:
            message_error(request, exc)
            return redirect("campaigns:report-people", pk=pk, figure=figure)
        messages.success(request, f"Saved the segment {segment.name}.")
        return redirect("contacts:segment-edit", pk=segment.pk)
    rows, total = [], 0
    for row in selectors.recipient_rows(campaign):
        if wanted(row):
            total += 1
            if len(rows) < PEOPLE_LIMIT:
                rows.append(row)
    return render(
        request,
        "campaigns/report_people.html",
        {
            "campaign": campaign, "title": title, "rows": rows, "total": total, "limit": PEOPLE_LIMIT,
            "can_save": segment_op is not None and can(request.user, "manage_contacts"),
        },
    )  # fmt: skip


# --- The public archive (campaigns.archive): off unless CAMPAIGNS_ARCHIVE ---

# Archived mail is the marketer's HTML: no script, nothing but its own styles, images and fonts.
_ARCHIVE_ITEM_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline' https:; img-src data: https: http:; font-src https:; "
    "frame-ancestors 'none'; sandbox allow-popups allow-popups-to-escape-sandbox "
    "allow-top-navigation-by-user-activation"
)


def _archive_on() -> None:
    if not settings.CAMPAIGNS_ARCHIVE:
        raise Http404("The archive is switched off.")


def archive(request: HttpRequest) -> HttpResponse:
    from campaigns.archive import archived, rendered

    _archive_on()
    entries = [{"campaign": c, "subject": rendered(c)[0] or c.name} for c in archived()]
    return render(
        request, "campaigns/archive.html", {"entries": entries, "title": settings.CAMPAIGNS_ARCHIVE_TITLE}
    )


def archive_item(request: HttpRequest, pk: int) -> HttpResponse:
    from campaigns.archive import archived_one, rendered

    _archive_on()
    campaign = archived_one(pk)
    if campaign is None:
        raise Http404("No such archived campaign.")
    _, html = rendered(campaign)
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = _ARCHIVE_ITEM_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    return response


def archive_feed(request: HttpRequest, kind: str) -> HttpResponse:
    from campaigns.archive import feed

    _archive_on()
    if kind not in ("atom", "rss"):
        raise Http404("No such feed.")
    content_type = "application/atom+xml" if kind == "atom" else "application/rss+xml"
    return HttpResponse(feed(kind, settings.SITE_URL), content_type=f"{content_type}; charset=utf-8")


for _view in (archive, archive_item, archive_feed):
    _view.public_endpoint = True  # type: ignore[attr-defined]
