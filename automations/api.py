"""REST API for automations: read them (with their steps and counts), change their status, enrol
and remove contacts, and post application events (`POST /api/v1/events`), which start the
automations triggered by the event's name.

Thin views over automations.services and selectors; a refusal is the service's PlatformError.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from automations import selectors, services
from automations.models import Automation, Run, RunStatus, Status, Step
from mailplatform.api.serializers import StrictSerializer


class AutomationsScoped:
    read_scope = "automations:read"
    write_scope = "automations:write"


class StepSerializer(serializers.ModelSerializer):
    waiting = serializers.SerializerMethodField()
    sent = serializers.SerializerMethodField()
    opened = serializers.SerializerMethodField()
    clicked = serializers.SerializerMethodField()

    class Meta:
        model = Step
        fields = [
            "id",
            "key",
            "position",
            "kind",
            "template",
            "config",
            "waiting",
            "sent",
            "opened",
            "clicked",
        ]
        read_only_fields = fields

    def _count(self, step: Step, name: str) -> int:
        return int(self.context.get("counts", {}).get(step.pk, {}).get(name, 0))

    def get_waiting(self, step: Step) -> int:
        return self._count(step, "waiting")

    def get_sent(self, step: Step) -> int:
        return self._count(step, "sent")

    def get_opened(self, step: Step) -> int:
        return self._count(step, "opened")

    def get_clicked(self, step: Step) -> int:
        return self._count(step, "clicked")


class AutomationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Automation
        fields = [
            "id", "name", "description", "status", "trigger", "trigger_list", "trigger_segment", "trigger_field",
            "trigger_hour", "trigger_event", "trigger_campaign_id", "entry_policy", "entry_days", "exit_segment",
            "exit_on_unsubscribe", "from_email", "from_name", "recipe", "last_error", "created_at", "updated_at",
            "activated_at",
        ]  # fmt: skip
        read_only_fields = fields


class AutomationDetailSerializer(AutomationSerializer):
    steps = serializers.SerializerMethodField()

    class Meta(AutomationSerializer.Meta):
        fields = [*AutomationSerializer.Meta.fields, "steps"]
        read_only_fields = fields

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, automation: Automation) -> list[dict[str, Any]]:
        counts = selectors.step_counts(automation.pk)
        steps = Step.objects.filter(automation=automation).order_by("position")
        return StepSerializer(steps, many=True, context={"counts": counts}).data


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = [
            "id",
            "automation",
            "contact",
            "step",
            "status",
            "next_at",
            "entered_at",
            "finished_at",
            "exit_reason",
            "data",
        ]
        read_only_fields = fields


class StatusSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=Status.values)


class EnrolSerializer(StrictSerializer):
    contacts = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10_000
    )
    segment = serializers.IntegerField(min_value=1, required=False)
    list = serializers.IntegerField(min_value=1, required=False)


class RemoveSerializer(StrictSerializer):
    contacts = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=10_000)


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


class EventSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    contact_id = serializers.IntegerField(min_value=1, required=False)
    email = serializers.EmailField(required=False)
    create = serializers.BooleanField(required=False, default=False)
    properties = serializers.DictField(required=False, default=dict)


class EventResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    contact = serializers.IntegerField()
    name = serializers.CharField()
    started = serializers.IntegerField(help_text="Automation runs this event started.")


def _automation(pk: int) -> Automation:
    from mailplatform.errors import NotFound

    automation = Automation.objects.filter(pk=pk).first()
    if automation is None:
        raise NotFound(f"automation {pk} does not exist")
    return automation


class AutomationListView(AutomationsScoped, generics.GenericAPIView):
    serializer_class = AutomationSerializer

    def get_queryset(self):
        state = self.request.query_params.get("status", "")
        if state and state not in Status.values:
            raise ValidationError({"status": [f"Must be one of {', '.join(Status.values)}."]})
        automations = Automation.objects.order_by("id")
        return automations.filter(status=state) if state else automations

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=Status.values)],
        responses=AutomationSerializer(many=True),
        operation_id="automations_list",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(AutomationSerializer(page, many=True).data)


class AutomationDetailView(AutomationsScoped, generics.GenericAPIView):
    serializer_class = AutomationDetailSerializer

    @extend_schema(operation_id="automations_retrieve", responses=AutomationDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(AutomationDetailSerializer(_automation(pk)).data)


class AutomationStatusView(AutomationsScoped, generics.GenericAPIView):
    @extend_schema(
        operation_id="automations_status",
        description="Activate, pause (runs are held where they are), resume (`active`) or archive (runs end).",
        request=StatusSerializer,
        responses=AutomationSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        data = StatusSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _automation(pk)
        automation = services.automation_set_status(pk, data.validated_data["status"], by=request.user)
        return Response(AutomationSerializer(automation).data)


class AutomationEnrolView(AutomationsScoped, generics.GenericAPIView):
    @extend_schema(
        operation_id="automations_enrol",
        description="Start runs for contacts (ids), everyone in a segment, or everyone confirmed on a list, "
        "as the entry policy allows. The automation must be active.",
        request=EnrolSerializer,
        responses=CountSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        data = EnrolSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if sum(1 for k in ("contacts", "segment", "list") if k in values) != 1:
            raise ValidationError({"contacts": ["Give exactly one of contacts, segment or list."]})
        _automation(pk)
        started = services.enrol_by_hand(
            pk,
            contact_ids=values.get("contacts", ()),
            segment_id=values.get("segment"),
            list_id=values.get("list"),
            by=request.user,
        )
        return Response({"count": started})


class AutomationRemoveView(AutomationsScoped, generics.GenericAPIView):
    @extend_schema(
        operation_id="automations_remove",
        description="End these contacts' runs; their mail of this automation not yet sent is cancelled.",
        request=RemoveSerializer,
        responses=CountSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        data = RemoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _automation(pk)
        ended = services.runs_remove(pk, contact_ids=data.validated_data["contacts"], by=request.user)
        return Response({"count": ended})


class AutomationRunsView(AutomationsScoped, generics.GenericAPIView):
    serializer_class = RunSerializer

    @extend_schema(
        operation_id="automations_runs",
        parameters=[OpenApiParameter("status", str, enum=RunStatus.values)],
        responses=RunSerializer(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        _automation(pk)
        runs = Run.objects.filter(automation_id=pk).order_by("id")
        state = request.query_params.get("status", "")
        if state:
            if state not in RunStatus.values:
                raise ValidationError({"status": [f"Must be one of {', '.join(RunStatus.values)}."]})
            runs = runs.filter(status=state)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)


class EventCreateView(generics.GenericAPIView):
    """An application's event about a contact; it starts the automations whose trigger names it, and
    its properties are `{{ event.* }}` in their mail."""

    write_scope = "events:write"
    extra_problem_responses = {"404": "No contact with this id, or with this address and `create` not set."}

    @extend_schema(
        operation_id="app_events_create",
        request=EventSerializer,
        responses={201: EventResultSerializer},
    )
    def post(self, request: Request) -> Response:
        data = EventSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if ("contact_id" in values) == ("email" in values):
            raise ValidationError({"contact_id": ["Give exactly one of contact_id or email."]})
        event, started = services.event_record(
            name=values["name"],
            contact_id=values.get("contact_id"),
            email=values.get("email", ""),
            create=values["create"],
            properties=values["properties"],
            by=request.user,
        )
        body = {"id": event.pk, "contact": event.contact_id, "name": event.name, "started": started}
        return Response(body, status=status.HTTP_201_CREATED)
