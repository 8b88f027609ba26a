"""The automations dashboard: the list with figures, recipes, the flow builder, runs, a contact's runs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from automations import selectors, services
from automations.forms import FIELDS_BY_KIND, AutomationForm, EnrolForm, RecipeForm, StepForm, describe
from automations.models import Automation, RunStatus, Status, Step, StepKind
from automations.recipes import RECIPES, recipe_create
from mailplatform.errors import Invalid, PlatformError, form_error, message_error
from mailplatform.permissions import requires


@requires("view_dashboard")
def index(request: HttpRequest) -> HttpResponse:
    automations = list(selectors.automation_list())
    for automation in automations:
        automation.figures = selectors.automation_figures(automation.pk)
    return render(
        request, "automations/index.html", {"automations": automations, "recipes": RECIPES.values()}
    )


@requires("manage_campaigns")
@require_POST
def create(request: HttpRequest) -> HttpResponse:
    try:
        automation = services.automation_create(
            name=request.POST.get("name", ""), trigger="manual", by=request.user
        )
    except PlatformError as exc:
        message_error(request, exc)
        return redirect("automations:index")
    return redirect("automations:detail", pk=automation.pk)


@requires("manage_campaigns")
def recipe(request: HttpRequest, slug: str) -> HttpResponse:
    found = RECIPES.get(slug)
    if found is None:
        raise Http404("no such recipe")
    if request.method == "POST":
        form = RecipeForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                automation = recipe_create(
                    slug,
                    list_id=data["trigger_list"].pk if data["trigger_list"] else None,
                    segment_id=data["trigger_segment"].pk if data["trigger_segment"] else None,
                    field=data["trigger_field"] or "",
                    from_email=data["from_email"] or "",
                    by=request.user,
                )
            except PlatformError as exc:
                form_error(form, exc)
            else:
                messages.success(
                    request, f"Made “{automation.name}” from the recipe. Review its mails, then activate it."
                )
                return redirect("automations:detail", pk=automation.pk)
    else:
        form = RecipeForm(initial={"trigger_list": request.GET.get("list") or None})
    return render(request, "automations/recipe.html", {"recipe": found, "form": form})


def _flow_context(automation: Automation) -> dict[str, Any]:
    steps = list(Step.objects.filter(automation=automation).select_related("template").order_by("position"))
    counts = selectors.step_counts(automation.pk)
    by_key = {s.key: s for s in steps}
    rows = []
    for index, step in enumerate(steps):
        later = steps[index + 1 :]
        other = by_key.get(str((step.config or {}).get("otherwise") or ""))
        rows.append(
            {
                "step": step,
                "text": describe(step),
                "counts": counts.get(step.pk, {}),
                "form": StepForm(step=step, later=later, prefix=f"s{step.pk}"),
                "fields": FIELDS_BY_KIND.get(StepKind(step.kind), ()),
                "branches": step.kind in (StepKind.BRANCH, StepKind.SPLIT),
                "otherwise": other,
            }
        )
    return {
        "automation": automation,
        "rows": rows,
        "add_form": StepForm(later=[], prefix="new"),
        "kinds": StepKind.choices,
        "all_fields": FIELDS_BY_KIND,
        "editable": automation.status != Status.ARCHIVED,
        "webhook_secret": selectors.webhook_secret(automation),
    }


@requires("view_dashboard")
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=pk)
    if request.method == "POST":
        if not _editor(request):
            return HttpResponse("Your role may not change automations.", status=403)
        form = AutomationForm(request.POST, instance=Automation.objects.get(pk=pk))
        if form.is_valid():
            try:
                services.automation_update(pk, by=request.user, **form.changes())
            except PlatformError as exc:
                form_error(form, exc)
            else:
                messages.success(request, "Saved the automation's settings.")
                return redirect("automations:detail", pk=pk)
    else:
        form = AutomationForm(instance=automation)
    context = _flow_context(automation)
    context.update(
        settings_form=form,
        figures=selectors.automation_figures(pk),
        enrol_form=EnrolForm(),
        run_counts={s: automation.runs.filter(status=s).count() for s in RunStatus.values},
        can_edit=_editor(request),
    )
    return render(request, "automations/detail.html", context)


def _editor(request: HttpRequest) -> bool:
    from mailplatform.roles import can

    return can(request.user, "manage_campaigns")


def _flow_response(request: HttpRequest, automation_id: int) -> HttpResponse:
    if request.headers.get("HX-Request"):
        automation = Automation.objects.get(pk=automation_id)
        context = _flow_context(automation)
        context["can_edit"] = _editor(request)
        return render(request, "automations/_flow.html", context)
    return redirect("automations:detail", pk=automation_id)


def _refused(request: HttpRequest, automation_id: int, exc: PlatformError, *, prefix: str) -> HttpResponse:
    """The refusal goes into the page's messages; under htmx the page reloads to show it."""
    message_error(request, exc, prefix=prefix)
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return _flow_response(request, automation_id)


@requires("view_dashboard")
def flow_counts(request: HttpRequest, pk: int) -> HttpResponse:
    """The steps' counts, swapped into the flow out of band (the page polls this)."""
    automation = get_object_or_404(Automation, pk=pk)
    counts = selectors.step_counts(automation.pk)
    return render(request, "automations/_counts.html", {"counts": counts.items()})


@requires("manage_campaigns")
@require_POST
def step_add(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=pk)
    kind = request.POST.get("kind", "")
    form = StepForm(request.POST, later=list(Step.objects.filter(automation=automation)), prefix="new")
    try:
        if kind not in StepKind.values:
            raise Invalid("choose what the step does", field="kind")
        if not form.is_valid():
            raise Invalid("; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        template_id, config = form.values(kind)
        after = request.POST.get("after")
        services.step_add(
            pk, kind=kind, template_id=template_id, config=config,
            after=int(after) if after not in (None, "") else None, by=request.user,
        )  # fmt: skip
    except PlatformError as exc:
        return _refused(request, pk, exc, prefix="The step was not added: ")
    return _flow_response(request, pk)


@requires("manage_campaigns")
@require_POST
def step_update(request: HttpRequest, pk: int, step_id: int) -> HttpResponse:
    step = get_object_or_404(Step, pk=step_id, automation_id=pk)
    later = list(Step.objects.filter(automation_id=pk, position__gt=step.position))
    form = StepForm(request.POST, step=step, later=later, prefix=f"s{step.pk}")
    try:
        if not form.is_valid():
            raise Invalid("; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        template_id, config = form.values(step.kind)
        services.step_update(step.pk, template_id=template_id, config=config, by=request.user)
    except PlatformError as exc:
        return _refused(request, pk, exc, prefix=f"Step {step.position} was not saved: ")
    return _flow_response(request, pk)


@requires("manage_campaigns")
@require_POST
def step_delete(request: HttpRequest, pk: int, step_id: int) -> HttpResponse:
    get_object_or_404(Step, pk=step_id, automation_id=pk)
    try:
        moved = services.step_delete(step_id, by=request.user)
        if moved:
            messages.info(request, f"{moved} contacts waiting there moved on to the next step.")
    except PlatformError as exc:
        return _refused(request, pk, exc, prefix="The step was not removed: ")
    return _flow_response(request, pk)


@requires("manage_campaigns")
@require_POST
def step_move(request: HttpRequest, pk: int, step_id: int) -> HttpResponse:
    get_object_or_404(Step, pk=step_id, automation_id=pk)
    try:
        services.step_move(step_id, up=request.POST.get("direction") == "up", by=request.user)
    except PlatformError as exc:
        return _refused(request, pk, exc, prefix="The step was not moved: ")
    return _flow_response(request, pk)


@requires("manage_campaigns")
@require_POST
def status(request: HttpRequest, pk: int) -> HttpResponse:
    wanted = request.POST.get("status", "")
    try:
        services.automation_set_status(pk, wanted, by=request.user)
        messages.success(request, f"The automation is {wanted}.")
    except PlatformError as exc:
        message_error(request, exc)
    return redirect("automations:detail", pk=pk)


@requires("manage_campaigns")
@require_POST
def enrol(request: HttpRequest, pk: int) -> HttpResponse:
    from contacts.selectors import contact_ids_by_address

    form = EnrolForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose whom to add.")
        return redirect("automations:detail", pk=pk)
    data = form.cleaned_data
    try:
        if data["segment"] is not None:
            started = services.enrol_by_hand(pk, segment_id=data["segment"].pk, by=request.user)
        elif data["mailing_list"] is not None:
            started = services.enrol_by_hand(pk, list_id=data["mailing_list"].pk, by=request.user)
        else:
            addresses = [a.strip() for a in data["emails"].replace(",", "\n").splitlines() if a.strip()]
            ids = contact_ids_by_address(addresses).values()
            started = services.enrol_by_hand(pk, contact_ids=ids, by=request.user)
        messages.success(request, f"{started} contacts started the automation.")
    except PlatformError as exc:
        message_error(request, exc)
    return redirect("automations:detail", pk=pk)


@requires("view_dashboard")
def runs(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=pk)
    state = request.GET.get("status", "")
    page = list(selectors.runs_page(pk, status=state))
    return render(
        request,
        "automations/runs.html",
        {"automation": automation, "runs": page, "status": state, "statuses": RunStatus.choices},
    )


@requires("manage_campaigns")
@require_POST
def run_remove(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    from automations.models import Run

    run = get_object_or_404(Run, pk=run_id, automation_id=pk)
    services.runs_remove(pk, contact_ids=[run.contact_id], by=request.user)
    messages.success(request, "The contact was taken out of the automation.")
    return redirect("automations:runs", pk=pk)


@requires("view_dashboard")
def contact_runs(request: HttpRequest, contact_id: int) -> HttpResponse:
    """The contact page's fragment: every automation run of this contact, with its history."""
    runs = list(selectors.runs_of_contact(contact_id))
    for run in runs:
        run.history = list(selectors.run_history(run.pk))
    return render(request, "automations/_contact_runs.html", {"runs": runs})
