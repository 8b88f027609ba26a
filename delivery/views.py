"""Dashboard views (thin: selectors read, services write) and the public one-click unsubscribe."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from delivery import domains, mailings, selectors, transactional, verp, warmup, webversion
from delivery import identities as identity_service
from delivery import relays as relay_service
from delivery.forms import IdentityForm, LedgerSearchForm, RelayForm, TestSendForm, WarmupForm
from delivery.models import Mailing, Message, Relay, SendingIdentity, WarmupSchedule
from delivery.smtp import RelayError
from mailplatform.errors import PlatformError, form_error, message_error
from mailplatform.permissions import requires
from mailplatform.services import audit_record


@requires("view_dashboard")
def index(request: HttpRequest) -> HttpResponse:
    mailings = list(selectors.mailings_page())
    rows = [{"mailing": m, "progress": selectors.mailing_progress(m.pk)} for m in mailings[:20]]
    return render(
        request,
        "delivery/index.html",
        {"rows": rows, "older": mailings[20:], "figures": selectors.home_figures()},
    )


@requires("view_dashboard")
def home_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "delivery/home_fragment.html", {"figures": selectors.home_figures()})


@requires("view_dashboard")
def mailing_detail(request: HttpRequest, pk: int) -> HttpResponse:
    mailing = get_object_or_404(Mailing, pk=pk)
    return render(
        request,
        "delivery/mailing.html",
        {
            "mailing": mailing,
            "progress": selectors.mailing_progress(pk),
            "events": selectors.mailing_event_counts(pk),
            "problems": selectors.ledger_search(mailing_id=pk, state="failed", limit=20),
        },
    )


@requires("view_dashboard")
def mailing_progress_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    mailing = get_object_or_404(Mailing, pk=pk)
    return render(
        request,
        "delivery/progress_fragment.html",
        {"mailing": mailing, "progress": selectors.mailing_progress(pk)},
    )


_ACTIONS = {
    "pause": mailings.mailing_pause,
    "resume": mailings.mailing_resume,
    "cancel": mailings.mailing_cancel,
}


@requires("send_mail")
@require_POST
def mailing_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    get_object_or_404(Mailing, pk=pk)
    if action == "resume-group":
        group = request.POST.get("group", "").strip().lower()
        try:
            back = mailings.mailing_resume_group(pk, group, by=request.user)
            messages.success(
                request, f"{group} resumed: {back} message{'s' if back != 1 else ''} back in the queue."
            )
        except PlatformError as exc:
            message_error(request, exc)
        return redirect("delivery:mailing", pk=pk)
    service = _ACTIONS.get(action)
    if service is None:
        raise Http404("unknown action")
    try:
        service(pk, by=request.user)
        messages.success(request, f"Mailing {action}d." if action != "cancel" else "Mailing cancelled.")
    except PlatformError as exc:
        message_error(request, exc)
    return redirect("delivery:mailing", pk=pk)


@requires("view_dashboard")
def ledger(request: HttpRequest) -> HttpResponse:
    form = LedgerSearchForm(request.GET or None)
    rows: list[Message] = []
    if form.is_valid() and any(form.cleaned_data.values()):
        rows = list(
            selectors.ledger_search(
                address=form.cleaned_data["address"] or "",
                mailing_id=form.cleaned_data["mailing"],
                state=form.cleaned_data["state"] or "",
            )
        )
    return render(request, "delivery/ledger.html", {"form": form, "rows": rows, "searched": form.is_bound})


@requires("view_dashboard")
def contact_timeline(request: HttpRequest, contact_id: int) -> HttpResponse:
    from delivery.bounces.selectors import contact_unlinked_bounces

    return render(
        request,
        "delivery/contact_timeline.html",
        {
            "entries": selectors.contact_timeline(contact_id),
            "unlinked_bounces": list(contact_unlinked_bounces(contact_id)),
        },
    )


@requires("manage_templates")
@require_POST
def template_test_send(request: HttpRequest, template_id: int) -> HttpResponse:
    """Send the template as it is saved now to one address; answers with a small HTML fragment."""
    from templates.services import template_compile

    form = TestSendForm(request.POST)
    if not form.is_valid():
        return render(
            request, "delivery/test_send_result.html", {"error": "; ".join(form.errors["to"])}, status=400
        )
    try:
        compiled = template_compile(template_id, form.cleaned_data.get("version_id"))
    except ObjectDoesNotExist:
        raise Http404("no such template") from None
    except ValueError as exc:  # a template that does not compile
        return render(request, "delivery/test_send_result.html", {"error": str(exc)}, status=400)
    try:
        message = transactional.test_send(
            compiled, form.cleaned_data["to"], name=f"Test of template {template_id}", by=request.user
        )
    except PlatformError as exc:
        return render(
            request, "delivery/test_send_result.html", {"error": " ".join(exc.messages)}, status=400
        )
    return render(request, "delivery/test_send_result.html", {"message": message})


# --- relays and identities (admins) ---


@requires("manage_relays")
def relays(request: HttpRequest) -> HttpResponse:
    relay_service.relay_ensure_default()
    return render(
        request,
        "delivery/relays.html",
        {
            "rows": selectors.relays_with_usage(),
            "domain_rows": domains.overview(),
            "identities": selectors.identities(),
            "form": IdentityForm(),
        },
    )


@requires("manage_relays")
def relays_usage_fragment(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "delivery/relays_usage.html",
        {"rows": selectors.relays_with_usage(), "domain_rows": domains.overview()},
    )


@requires("manage_relays")
def relay_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    relay = get_object_or_404(Relay, pk=pk) if pk else None
    form = RelayForm(request.POST or None, instance=relay)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        password = data.pop("password") or None
        if data.pop("clear_password"):
            password = ""
        instance = relay or Relay()
        try:
            saved = relay_service.relay_save(instance, by=request.user, password=password, **data)
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Relay {saved.name} saved.")
            return redirect("delivery:relays")
    return render(request, "delivery/relay_form.html", {"form": form, "relay": relay})


@requires("manage_relays")
@require_POST
def relay_test(request: HttpRequest, pk: int) -> HttpResponse:
    relay = get_object_or_404(Relay, pk=pk)
    try:
        info = relay_service.relay_test(relay)
    except RelayError as exc:
        result = {"ok": False, "error": str(exc)}
    else:
        result = {
            "ok": True,
            "banner": info.banner,
            "tls": info.tls_version or ("yes" if info.tls else "no"),
            "authenticated": info.authenticated,
            "capabilities": sorted(f"{k.upper()} {v}".strip() for k, v in info.esmtp.items()),
        }
    audit_record(request.user, "relay.tested", relay, details={"ok": result["ok"]})
    return render(request, "delivery/relay_test.html", {"relay": relay, "result": result})


@requires("manage_relays")
@require_POST
def relay_delete(request: HttpRequest, pk: int) -> HttpResponse:
    relay = get_object_or_404(Relay, pk=pk)
    relay_service.relay_delete(relay, by=request.user)
    messages.success(request, f"Relay {relay.name} deleted.")
    return redirect("delivery:relays")


@requires("manage_relays")
def identities(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("delivery:relays")
    form = IdentityForm(request.POST)
    if form.is_valid():
        try:
            identity = identity_service.identity_save(address=form.cleaned_data["address"], by=request.user)
            if form.cleaned_data["generate_dkim"]:
                identity_service.identity_generate_dkim(
                    identity, selector=form.cleaned_data["dkim_selector"] or None, by=request.user
                )
            messages.success(request, f"{identity.address} may now send.")
        except PlatformError as exc:
            message_error(request, exc)
    else:
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("delivery:relays")


@requires("manage_relays")
@require_POST
def identity_dkim(request: HttpRequest, pk: int) -> HttpResponse:
    identity = get_object_or_404(SendingIdentity, pk=pk)
    identity_service.identity_generate_dkim(identity, by=request.user)
    messages.success(request, f"New DKIM key for {identity.address}: publish the DNS record below.")
    return redirect("delivery:relays")


@requires("manage_relays")
@require_POST
def identity_delete(request: HttpRequest, pk: int) -> HttpResponse:
    identity = get_object_or_404(SendingIdentity, pk=pk)
    audit_record(request.user, "identity.deleted", identity)
    identity.delete()
    return redirect("delivery:relays")


# --- sender health ---


@requires("view_dashboard")
def health(request: HttpRequest) -> HttpResponse:
    from delivery import charts
    from delivery.health import THRESHOLDS, sender_health

    sending = request.GET.get("sending", "").strip().lower()
    receiving = request.GET.get("receiving", "").strip().lower()
    data = sender_health(sending=sending, receiving=receiving)
    where = " ".join(
        filter(None, [f"from {sending}" if sending else "", f"to {receiving}" if receiving else ""])
    )
    chart_sets = []
    for key, label in (("daily", "per day, last 30 days"), ("hourly", "per hour, last 48 hours")):
        points = data[key]
        chart_sets.append(
            {
                "label": label,
                "charts": [
                    charts.rate_chart(points, ["delivered", "deferred"], title=f"Delivered and deferred {label} {where}", floor_peak=100),
                    charts.rate_chart(
                        points, ["bounced"], thresholds=THRESHOLDS["bounced"], ceiling=10,
                        title=f"Bounced {label} {where}",
                    ),
                    charts.rate_chart(
                        points, ["complained", "unsubscribed"], thresholds=THRESHOLDS["complained"], ceiling=1,
                        title=f"Complaints and unsubscribes {label} {where}",
                    ),
                ],
            }
        )  # fmt: skip
    return render(
        request,
        "delivery/health.html",
        {"data": data, "sending": sending, "receiving": receiving, "chart_sets": chart_sets, "where": where},
    )


# --- warm-up schedules (admins) ---


@requires("manage_relays")
def warmup_list(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The schedules with today's use; the form adds one, or changes the one named by `pk`."""
    schedule = get_object_or_404(WarmupSchedule, pk=pk) if pk else None
    initial = {}
    if schedule is not None:
        initial = {
            "domain": schedule.domain,
            "relay": schedule.relay_id,
            "caps": ", ".join(str(c) for c in schedule.caps),
            "starts_on": schedule.starts_on,
            "enabled": schedule.enabled,
        }
    form = WarmupForm(request.POST or None, initial=initial or {"enabled": True})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = warmup.warmup_save(
                schedule,
                domain=data["domain"] or "",
                relay_id=data["relay"].pk if data["relay"] else None,
                caps=data["caps"],
                starts_on=data["starts_on"],
                enabled=data["enabled"],
                by=request.user,
            )
        except PlatformError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Warm-up of {saved.target} saved.")
            return redirect("delivery:warmup")
    return render(
        request,
        "delivery/warmup.html",
        {
            "rows": warmup.schedules_overview(),
            "form": form,
            "editing": schedule,
            "starters": warmup.STARTERS,
            "domains": sorted({i.domain for i in selectors.identities()}),
        },
    )


@requires("manage_relays")
@require_POST
def warmup_delete(request: HttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(WarmupSchedule, pk=pk)
    warmup.warmup_delete(schedule, by=request.user)
    messages.success(request, f"Warm-up of {schedule.target} removed: no daily cap any more.")
    return redirect("delivery:warmup")


# --- public ---


@csrf_exempt
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """RFC 8058: a POST unsubscribes at once (mailbox providers post without a session or token);
    a GET, which link scanners fetch, only shows a page with the button."""
    message_id = verp.message_id_from_token(token, "unsubscribe")
    message = Message.objects.select_related("mailing").filter(pk=message_id).first() if message_id else None
    if message is None:
        return render(request, "delivery/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        mailings.unsubscribe_by_message(message.pk, source="one-click")
        return render(request, "delivery/unsubscribe.html", {"done": True, "message": message})
    if request.method in ("GET", "HEAD"):
        return render(request, "delivery/unsubscribe.html", {"message": message})
    return HttpResponseNotAllowed(["GET", "POST"])


unsubscribe.public_endpoint = True  # type: ignore[attr-defined]


# The web version is the marketer's HTML: it runs no script (a sandbox of its own, no script
# source), loads nothing but its styles, images and fonts, and is neither framed nor indexed.
_WEB_VERSION_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline' https:; img-src data: https: http:; font-src https:; "
    "frame-ancestors 'none'; sandbox allow-popups allow-popups-to-escape-sandbox "
    "allow-top-navigation-by-user-activation"
)


def web_version(request: HttpRequest, token: str) -> HttpResponse:
    """Public: the "view in browser" link of one message (delivery.webversion). Not tracked."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    message_id = webversion.message_for_token(token)
    html = webversion.web_version_html(message_id) if message_id else None
    if html is None:
        response = HttpResponse(
            "This link is not valid.", status=404, content_type="text/plain; charset=utf-8"
        )
    else:
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = _WEB_VERSION_POLICY
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    return response


web_version.public_endpoint = True  # type: ignore[attr-defined]


@requires("manage_contacts")
def list_confirmation(request: HttpRequest, list_id: int) -> HttpResponse:
    """Fragment on a list's page: the confirmation mail (template and identity) of its double opt-in."""
    from contacts.models import MailingList
    from delivery.models import ListConfirmation
    from templates.models import EmailTemplate

    mailing_list = get_object_or_404(MailingList, pk=list_id)
    error = saved = ""
    if request.method == "POST":
        template_id = request.POST.get("template", "")
        identity_id = request.POST.get("identity", "")
        try:
            transactional.list_confirmation_save(
                mailing_list.pk,
                template_id=int(template_id) if template_id.isdigit() else None,
                identity_id=int(identity_id) if identity_id.isdigit() else None,
                by=request.user,
            )
            saved = "Saved: new confirmation mails use it."
        except PlatformError as exc:
            error = str(exc)
    chosen = ListConfirmation.objects.filter(mailing_list_id=mailing_list.pk).first()
    return render(
        request,
        "delivery/list_confirmation.html",
        {
            "list": mailing_list,
            "chosen": chosen,
            "templates": EmailTemplate.objects.filter(
                transactional=True, archived=False, kind="template"
            ).order_by("name"),
            "identities": SendingIdentity.objects.order_by("address"),
            "error": error,
            "saved": saved,
            "default_from": settings.DELIVERY_DEFAULT_FROM_EMAIL,
        },
    )
