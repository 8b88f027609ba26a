from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from mailplatform import selectors, services
from mailplatform.forms import ThrottledAuthenticationForm, UserCreateForm, UserRoleForm
from mailplatform.models import CapturedMessage, User
from mailplatform.permissions import requires


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "mailplatform/login.html"
    redirect_authenticated_user = True


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    states = selectors.platform_state()
    body = {state.name: "up" if state.up else "down" for state in states}
    healthy = all(state.up for state in states)
    return JsonResponse({"status": "ok" if healthy else "degraded", **body}, status=200 if healthy else 503)


@requires("view_dashboard")
def home(request: HttpRequest) -> HttpResponse:
    context = {"services": selectors.platform_state(), "home_fragments": selectors.home_fragment_urls()}
    return render(request, "mailplatform/home.html", context)


@requires("view_dashboard")
def settings_index(request: HttpRequest) -> HttpResponse:
    return render(request, "mailplatform/settings.html")


@requires("view_audit_log")
def audit_log(request: HttpRequest) -> HttpResponse:
    entries = selectors.audit_entries(
        action=request.GET.get("action", ""), actor=request.GET.get("actor", "")
    )
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "mailplatform/audit_log.html", {"page": page})


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
    page = Paginator(selectors.captured_messages(), 50).get_page(request.GET.get("page"))
    return render(request, "mailplatform/captured_messages.html", {"page": page})


@requires("view_dashboard")
def captured_message_raw(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(CapturedMessage, pk=pk)
    # Served as plain text with nosniff: the raw source never renders as HTML in our origin.
    response = HttpResponse(bytes(message.raw), content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response
