from __future__ import annotations

import datetime as dt
import hmac
import logging

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from mailplatform import firstrun, selectors, services
from mailplatform.errors import PlatformError, form_error
from mailplatform.forms import (
    ApiKeyCreateForm,
    PlatformPasswordResetForm,
    ScopeCeilingForm,
    ThrottledAuthenticationForm,
    ThrottledPasswordChangeForm,
    UserCreateForm,
    UserRoleForm,
    WebhookCreateForm,
)
from mailplatform.models import CapturedMessage, User, WebhookDelivery
from mailplatform.permissions import requires
from mailplatform.roles import Role
from mailplatform.scopes import default_ceiling

log = logging.getLogger(__name__)


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "mailplatform/login.html"
    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = ThrottledPasswordChangeForm
    template_name = "mailplatform/password_change.html"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PlatformPasswordResetForm
    template_name = "mailplatform/password_reset_form.html"


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "mailplatform/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "mailplatform/password_reset_confirm.html"


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "mailplatform/password_reset_complete.html"


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. It checks nothing else, so a database outage restarts no web process."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, Redis, broker reachable and every migration applied; 503 names what is not."""
    states = selectors.readiness()
    body = {state.name: "up" if state.up else "down" for state in states}
    ready = all(state.up for state in states)
    for state in states:
        if not state.up:
            # The reason goes to the log only: error texts name hosts and users, and this page is public.
            log.warning("readyz: %s is down: %s", state.name, state.detail)
    return JsonResponse({"status": "ok" if ready else "unavailable", **body}, status=200 if ready else 503)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for a scraper holding METRICS_TOKEN; absent (404) unless METRICS_ENABLED."""
    from django.conf import settings

    from mailplatform import metrics as platform_metrics

    if not settings.METRICS_ENABLED:
        raise Http404
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), settings.METRICS_TOKEN.encode()):
        response = HttpResponse("a bearer token is needed\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(platform_metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


metrics.public_endpoint = True  # type: ignore[attr-defined]  # Prometheus authenticates by bearer token


@requires("view_dashboard")
def home(request: HttpRequest) -> HttpResponse:
    steps = firstrun.checklist()
    context = {
        "services": selectors.platform_state(),
        "home_fragments": selectors.home_fragment_urls(),
        "first_run": steps,
        "first_run_left": sum(1 for s in steps if not s["done"]),
    }
    return render(request, "mailplatform/home.html", context)


@requires("view_dashboard")
def settings_index(request: HttpRequest) -> HttpResponse:
    return render(request, "mailplatform/settings.html")


@requires("view_audit_log")
def audit_log(request: HttpRequest) -> HttpResponse:
    entries = selectors.audit_entries(
        action=request.GET.get("action", ""),
        actor=request.GET.get("actor", ""),
        target_type=request.GET.get("type", ""),
    )
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "mailplatform/audit_log.html",
        {"page": page, "rows": selectors.audit_rows(page), "choices": selectors.audit_filter_choices()},
    )


@requires("manage_users")
def users(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    new_password = None
    if request.method == "POST" and form.is_valid():
        try:
            user, new_password = services.user_create(**form.cleaned_data, by=request.user)
            messages.success(request, f"Created {user.username}. Their password is shown below once.")
            form = UserCreateForm()
        except IntegrityError:
            form.add_error("username", "A user with that username already exists.")
    return render(
        request,
        "mailplatform/users.html",
        {"users": User.objects.order_by("username"), "form": form, "new_password": new_password},
    )


@require_POST
@requires("manage_users")
def user_update(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    if user == request.user:
        messages.error(request, "You cannot change your own role or deactivate yourself.")
        return redirect("users")
    if "active" in request.POST:
        services.user_set_active(user, request.POST["active"] == "1", by=request.user)
    else:
        form = UserRoleForm(request.POST)
        if form.is_valid():
            services.user_set_role(user, form.cleaned_data["role"], by=request.user)
    messages.success(request, f"Updated {user.username}.")
    return redirect("users")


@requires("view_dashboard")
def captured_messages(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:200]
    tests_only = request.GET.get("tests") == "1"
    rows = selectors.captured_messages(search=search, tests_only=tests_only)
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "mailplatform/captured_messages.html",
        {"page": page, "search": search, "tests_only": tests_only},
    )


@requires("view_dashboard")
def captured_message(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(CapturedMessage, pk=pk)
    return render(
        request,
        "mailplatform/captured_message.html",
        {"message": message, **selectors.captured_message_parts(message)},
    )


# The captured HTML is hostile as far as we know: it renders in a sandboxed frame (no scripts, an
# origin of its own) and under a policy that allows nothing but its own styles and images.
_CAPTURED_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; font-src https:"
)


@requires("view_dashboard")
@xframe_options_sameorigin
def captured_message_html(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(CapturedMessage, pk=pk)
    html = selectors.captured_message_parts(message)["html"] or "<p>This message has no HTML part.</p>"
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = _CAPTURED_HTML_POLICY + "; frame-ancestors 'self'"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@requires("view_dashboard")
def captured_message_attachment(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    message = get_object_or_404(CapturedMessage, pk=pk)
    attachments = selectors.captured_message_parts(message)["attachments"]
    if not 0 <= index < len(attachments):
        raise Http404("no such attachment")
    attachment = attachments[index]
    # Always a download, never rendered in our origin.
    response = HttpResponse(attachment["payload"], content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, attachment["filename"])
    response["X-Content-Type-Options"] = "nosniff"
    return response


@requires("view_dashboard")
def captured_message_raw(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(CapturedMessage, pk=pk)
    # Served as plain text with nosniff: the raw source never renders as HTML in our origin.
    response = HttpResponse(bytes(message.raw), content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


# --- API keys and webhooks ---


@requires("manage_api_keys")
def api_keys(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST or None, role=request.user.role)
    # Shown on the page after the redirect, once: a reload neither shows it again nor makes another.
    new_key = request.session.pop("new_api_key", None) if request.method == "GET" else None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            key, new_key = services.api_key_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
                rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
            )
            messages.success(request, f"Created {key}. Copy the key now: it is shown only once.")
            request.session["new_api_key"] = new_key
            return redirect("api-keys")
        except services.ApiKeyError as exc:
            form.add_error(None, str(exc))
    context = {
        "keys": selectors.api_keys_visible_to(request.user),
        "form": form,
        "new_key": new_key,
        "now": timezone.now(),
    }
    return render(request, "mailplatform/api_keys.html", context)


# The roles whose keys an admin bounds; admins' keys may carry every scope.
CEILING_ROLES = (Role.DEVELOPER, Role.MARKETER)


@requires("manage_users")
def api_key_limits(request: HttpRequest) -> HttpResponse:
    """What each non-admin role's API keys may do at most (mailplatform.scopes.scope_ceiling)."""
    posted = request.POST.get("role") if request.method == "POST" else None
    if posted is not None and posted not in CEILING_ROLES:
        return HttpResponse("Unknown role.", status=400)
    forms = {
        role: ScopeCeilingForm(request.POST if role == posted else None, role=role) for role in CEILING_ROLES
    }
    if posted is not None:
        form = forms[posted]
        if form.is_valid():
            try:
                services.scope_ceiling_set(posted, form.cleaned_data["scopes"], by=request.user)
                messages.success(request, f"Saved what {Role(posted).label.lower()}s' API keys may do.")
                return redirect("api-key-limits")
            except PlatformError as exc:
                form_error(form, exc)
    rows = [
        {"role": role, "label": Role(role).label, "form": forms[role], "default": default_ceiling(role)}
        for role in CEILING_ROLES
    ]
    return render(request, "mailplatform/api_key_limits.html", {"rows": rows})


@require_POST
@requires("manage_api_keys")
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(selectors.api_keys_visible_to(request.user), pk=pk)
    services.api_key_revoke(key, by=request.user)
    messages.success(request, f"Revoked {key}.")
    return redirect("api-keys")


@requires("manage_webhooks")
def webhooks(request: HttpRequest) -> HttpResponse:
    form = WebhookCreateForm(request.POST or None)
    new_secret = request.session.pop("new_webhook_secret", None) if request.method == "GET" else None
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.webhook_endpoint_create(**form.cleaned_data, by=request.user)
            messages.success(
                request, f"Subscribed {endpoint.url}. Copy the signing secret now: it is shown once."
            )
            request.session["new_webhook_secret"] = secret
            return redirect("webhooks")
        except services.WebhookError as exc:
            form.add_error("url", str(exc))
    context = {"endpoints": selectors.webhook_endpoints(), "form": form, "new_secret": new_secret}
    return render(request, "mailplatform/webhooks.html", context)


@requires("manage_webhooks")
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(selectors.webhook_endpoints(), pk=pk)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "toggle":
            services.webhook_endpoint_update(endpoint, active=not endpoint.active, by=request.user)
        elif action == "test":
            services.webhook_send_test(endpoint, by=request.user)
            messages.success(request, "A test event is on its way; it appears in the log below.")
        elif action == "redeliver":
            delivery = get_object_or_404(
                selectors.webhook_deliveries(endpoint=endpoint), pk=request.POST.get("delivery")
            )
            services.webhook_redeliver(delivery, by=request.user)
            messages.success(request, "Queued for delivery again.")
        elif action == "delete":
            services.webhook_endpoint_delete(endpoint, by=request.user)
            messages.success(request, f"Deleted the subscription for {endpoint.url}.")
            return redirect("webhooks")
        return redirect("webhook-detail", pk=endpoint.pk)
    status = request.GET.get("status", "")
    page = Paginator(selectors.webhook_deliveries(endpoint=endpoint, status=status), 50).get_page(
        request.GET.get("page")
    )
    statuses = WebhookDelivery.Status.choices
    return render(
        request,
        "mailplatform/webhook_detail.html",
        {"endpoint": endpoint, "page": page, "status": status, "statuses": statuses},
    )


@requires("manage_users")
def organisation(request: HttpRequest) -> HttpResponse:
    """The organisation's name, postal address, logo, default From / Reply-To and web address."""
    from mailplatform.forms import OrganisationForm
    from mailplatform.models import Organisation

    org = Organisation.objects.order_by("pk").first() or Organisation()
    form = OrganisationForm(request.POST or None, instance=org)
    if request.method == "POST" and form.is_valid():
        services.organisation_save(by=request.user, **form.cleaned_data)
        messages.success(request, "Saved: templates use it from now on.")
        return redirect("organisation")
    return render(request, "mailplatform/organisation.html", {"form": form})
