from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from delivery.bounces import rules, selectors
from delivery.bounces.forms import MailboxForm, PolicyForm
from delivery.bounces.mailboxes import mailbox_poll, mailbox_set_password
from delivery.bounces.models import BounceEvent, BounceMailbox, BouncePolicy, InboundMessage
from delivery.bounces.services import policy_update
from delivery.bounces.webhooks import webhook_states
from mailplatform.permissions import requires
from mailplatform.roles import can
from mailplatform.services import audit_record


@requires("view_dashboard")
def index(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind", "")
    source = request.GET.get("source", "")
    q = request.GET.get("q", "").strip()[:200]
    events = selectors.bounce_events(kind=kind, source=source, q=q)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    series = selectors.daily_series(30)
    peak = max([max(bar.bounces, bar.complaints) for bar in series] + [1])
    chart = []
    for index, bar in enumerate(series):
        bounces_h = round(100 * bar.bounces / peak, 1)
        complaints_h = round(100 * bar.complaints / peak, 1)
        chart.append(
            {
                "day": bar.day,
                "bounces": bar.bounces,
                "complaints": bar.complaints,
                "x": index * 10 + 1,
                "x2": index * 10 + 5,
                "bounces_h": bounces_h,
                "bounces_y": 100 - bounces_h,
                "complaints_h": complaints_h,
                "complaints_y": 100 - complaints_h,
            }
        )
    return render(
        request,
        "bounces/index.html",
        {
            "page": page,
            "kinds": rules.KINDS,
            "sources": InboundMessage.Source.choices,
            "totals": selectors.kind_totals(30),
            "chart": chart,
            "chart_width": len(chart) * 10,
            "peak": peak,
            "alerts": selectors.block_alerts(),
            "policy": BouncePolicy.current(),
            "can_manage": can(request.user, "manage_bounce_policy"),
            "webhooks": webhook_states(),
        },
    )


@requires("view_dashboard")
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(BounceEvent, pk=pk)
    return render(request, "bounces/event.html", {"event": event})


@requires("manage_bounce_policy")
def event_raw(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(BounceEvent.objects.select_related("inbound"), pk=pk)
    if event.inbound is None or not event.inbound.raw:
        raise Http404("the raw message is no longer kept")
    response = HttpResponse(bytes(event.inbound.raw), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="bounce-{event.inbound_id}.eml"'
    return response


@requires("manage_bounce_policy")
def policy(request: HttpRequest) -> HttpResponse:
    current = BouncePolicy.current()
    form = PolicyForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        policy_update(by=request.user, **{name: form.cleaned_data[name] for name in form.Meta.fields})
        messages.success(request, "Bounce policy saved.")
        return redirect("bounces:policy")
    return render(request, "bounces/policy.html", {"form": form})


@requires("manage_bounce_policy")
def mailboxes(request: HttpRequest) -> HttpResponse:
    return render(request, "bounces/mailboxes.html", {"mailboxes": BounceMailbox.objects.all()})


@requires("manage_bounce_policy")
def mailbox_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    mailbox = get_object_or_404(BounceMailbox, pk=pk) if pk else BounceMailbox()
    form = MailboxForm(request.POST or None, instance=mailbox)
    if request.method == "POST" and form.is_valid():
        mailbox = form.save(commit=False)
        if form.cleaned_data.get("password"):
            mailbox_set_password(mailbox, form.cleaned_data["password"])
        mailbox.save()
        audit_record(request.user, "bounces.mailbox_saved", mailbox, details={"host": mailbox.host})
        messages.success(request, f"Mailbox {mailbox.name} saved.")
        return redirect("bounces:mailboxes")
    return render(request, "bounces/mailbox_form.html", {"form": form, "mailbox": mailbox})


@require_POST
@requires("manage_bounce_policy")
def mailbox_poll_now(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = get_object_or_404(BounceMailbox, pk=pk)
    processed = mailbox_poll(mailbox)
    if mailbox.last_error:
        messages.error(request, f"{mailbox.name}: {mailbox.last_error}")
    else:
        messages.success(request, f"{mailbox.name}: {processed} message(s) processed.")
    return redirect("bounces:mailboxes")


@requires("view_dashboard")
def home_fragment(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "bounces/home_fragment.html",
        {"totals": selectors.kind_totals(7), "alerts": selectors.block_alerts()},
    )
