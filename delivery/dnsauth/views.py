"""The DNS checklist (admins): the latest results, and "Check now"."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from delivery.dnsauth import selectors, services
from mailplatform.permissions import requires


@requires("manage_relays")
def checklist(request: HttpRequest) -> HttpResponse:
    return render(request, "dnsauth/checklist.html", selectors.checklist())


@requires("manage_relays")
@require_POST
def check_now(request: HttpRequest) -> HttpResponse:
    # In the request, not a task: a few dozen queries with a short timeout, and the person who
    # just published a record wants the answer now. A DNS server that does not answer stops the
    # run at its first timeout (lookup.Lookup), so this stays bounded.
    counts = services.dns_checks_run()
    messages.success(
        request,
        f"Checked: {counts.get('pass', 0)} passing, {counts.get('fail', 0)} failing, "
        f"{counts.get('unknown', 0)} not answered.",
    )
    return redirect("dnsauth:checklist")
