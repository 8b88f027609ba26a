"""REST API for campaigns: CRUD, schedule, send, test send, pause, resume, cancel, report.

Thin views over campaigns.services and selectors. A change the campaign's state refuses (editing
after it started, resuming what is not paused) is a 409 with the service's own words.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors, services
from campaigns.models import Campaign, CampaignState, WinnerMetric
from contacts.models import MailingList, Segment
from delivery.models import Relay
from mailplatform.api.serializers import StrictSerializer
from templates.models import EmailTemplate


class CampaignsScoped:
    read_scope = "campaigns:read"
    write_scope = "campaigns:write"


class VariantSerializer(serializers.Serializer):
    label = serializers.CharField(read_only=True)
    subject = serializers.CharField(read_only=True)
    template = serializers.IntegerField(source="template_id", allow_null=True, read_only=True)


class CampaignSerializer(serializers.ModelSerializer):
    lists = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    exclude_lists = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    relays = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    variants = VariantSerializer(many=True, read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "state",
            "state_reason",
            "subject",
            "preheader",
            "template",
            "from_email",
            "from_name",
            "reply_to",
            "lists",
            "exclude_lists",
            "segment",
            "relays",
            "track_opens",
            "track_clicks",
            "frequency_cap_hours",
            "ab_test",
            "ab_test_percent",
            "ab_metric",
            "ab_wait_minutes",
            "variants",
            "scheduled_at",
            "schedule_timezone",
            "started_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class VariantInputSerializer(StrictSerializer):
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True, default="")
    template = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)


class CampaignWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True)
    preheader = serializers.CharField(max_length=300, required=False, allow_blank=True)
    template = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    from_email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    from_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    reply_to = serializers.CharField(max_length=254, required=False, allow_blank=True)
    lists = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    exclude_lists = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    segment = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    relays = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    track_opens = serializers.BooleanField(required=False)
    track_clicks = serializers.BooleanField(required=False)
    frequency_cap_hours = serializers.IntegerField(min_value=0, max_value=24 * 365, required=False)
    ab_test = serializers.BooleanField(required=False)
    ab_test_percent = serializers.IntegerField(min_value=1, max_value=100, required=False)
    ab_metric = serializers.ChoiceField(choices=WinnerMetric.choices, required=False)
    ab_wait_minutes = serializers.IntegerField(min_value=1, max_value=60 * 24 * 30, required=False)
    variants = serializers.ListField(child=VariantInputSerializer(), required=False, max_length=4)


class ScheduleSerializer(StrictSerializer):
    at = serializers.DateTimeField(help_text="When to send; without an offset it is read in `timezone`.")
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")


class TestSendSerializer(StrictSerializer):
    to = serializers.EmailField(max_length=254)
    variant = serializers.ChoiceField(choices=["", "A", "B", "C", "D"], required=False, default="")


class PauseSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


def _objects(model: Any, ids: list[int] | None, field: str) -> list[Any] | None:
    if ids is None:
        return None
    found = {o.pk: o for o in model.objects.filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({field: [f"No {model._meta.verbose_name} with id {missing[0]}."]})
    return [found[i] for i in ids]


def _one(model: Any, pk: int | None, field: str) -> Any:
    if pk is None:
        return None
    return _objects(model, [pk], field)[0]


def _changes(values: dict[str, Any]) -> dict[str, Any]:
    """Ids in the request as the objects the service takes."""
    changes = dict(values)
    if "template" in changes:
        changes["template"] = _one(EmailTemplate, changes["template"], "template")
    if "segment" in changes:
        changes["segment"] = _one(Segment, changes["segment"], "segment")
    for field, model in (("lists", MailingList), ("exclude_lists", MailingList)):
        if field in changes:
            changes[field] = _objects(model, changes[field], field)
    if "relays" in changes:
        changes["relays"] = _objects(Relay, changes["relays"], "relays")
    if "variants" in changes:
        changes["variants"] = [
            {"subject": v["subject"], "template": _one(EmailTemplate, v["template"], "variants")}
            for v in changes["variants"]
        ]
    return changes


def _campaigns():
    return Campaign.objects.prefetch_related("lists", "exclude_lists", "relays", "variants")


class CampaignListCreateView(CampaignsScoped, generics.GenericAPIView):
    serializer_class = CampaignSerializer

    def get_queryset(self):
        state = self.request.query_params.get("state", "")
        if state and state not in CampaignState.values:
            raise ValidationError({"state": [f"Must be one of {', '.join(CampaignState.values)}."]})
        campaigns = _campaigns()
        return campaigns.filter(state=state) if state else campaigns

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=CampaignState.values)],
        responses=CampaignSerializer(many=True),
        operation_id="campaigns_list",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CampaignSerializer(page, many=True).data)

    @extend_schema(
        request=CampaignWriteSerializer, responses={201: CampaignSerializer}, operation_id="campaigns_create"
    )
    def post(self, request: Request) -> Response:
        data = CampaignWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = _changes(data.validated_data)
        name = changes.pop("name", None)
        if not name:
            raise ValidationError({"name": ["This field is required."]})
        from django.db import transaction

        with transaction.atomic():
            campaign = services.campaign_create(name=name, by=request.user)
            if changes:
                services.campaign_update(campaign.pk, by=request.user, **changes)
        return Response(
            CampaignSerializer(_campaigns().get(pk=campaign.pk)).data, status=status.HTTP_201_CREATED
        )


class CampaignDetailView(CampaignsScoped, generics.GenericAPIView):
    serializer_class = CampaignSerializer

    def get_queryset(self):
        return _campaigns()

    @extend_schema(operation_id="campaigns_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(CampaignSerializer(self.get_object()).data)

    @extend_schema(
        request=CampaignWriteSerializer,
        operation_id="campaigns_update",
        description="Only drafts and scheduled campaigns can change (409 otherwise: clone it instead).",
    )
    def patch(self, request: Request, pk: int) -> Response:
        campaign = self.get_object()
        data = CampaignWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.campaign_update(campaign.pk, by=request.user, **_changes(data.validated_data))
        return Response(CampaignSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="campaigns_destroy",
        responses={204: None},
        description="Only a campaign that never started (draft, scheduled or failed); 409 otherwise.",
    )
    def delete(self, request: Request, pk: int) -> Response:
        campaign = self.get_object()
        services.campaign_delete(campaign.pk, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignActionView(CampaignsScoped, generics.GenericAPIView):
    """One lifecycle step; subclasses name the service call."""

    queryset = Campaign.objects.all()
    request_serializer: type[serializers.Serializer] | None = None
    ok_status = status.HTTP_200_OK

    def act(self, campaign: Campaign, values: dict[str, Any], request: Request) -> Any:
        raise NotImplementedError

    def post(self, request: Request, pk: int) -> Response:
        campaign = self.get_object()
        values: dict[str, Any] = {}
        if self.request_serializer is not None:
            data = self.request_serializer(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
        result = self.act(campaign, values, request)
        if isinstance(result, Campaign):
            return Response(CampaignSerializer(_campaigns().get(pk=result.pk)).data, status=self.ok_status)
        return Response(result, status=self.ok_status)


def _action(operation: str, description: str, **kwargs: Any):
    request = kwargs.pop("request", None)
    responses = kwargs.pop("responses", CampaignSerializer)
    return extend_schema(
        operation_id=operation, description=description, request=request, responses=responses, **kwargs
    )


class CampaignScheduleView(CampaignActionView):
    request_serializer = ScheduleSerializer

    @_action(
        "campaigns_schedule", "Schedule for a time (checked as if sending now).", request=ScheduleSerializer
    )
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        return services.campaign_schedule(
            campaign.pk, local_time=values["at"], tz_name=values["timezone"], by=request.user
        )


class CampaignUnscheduleView(CampaignActionView):
    @_action("campaigns_unschedule", "Back to draft.")
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        return services.campaign_unschedule(campaign.pk, by=request.user)


class CampaignSendView(CampaignActionView):
    ok_status = status.HTTP_202_ACCEPTED

    @_action(
        "campaigns_send",
        "Send now. Accepted at once (state `scheduled`, due now); a worker then snapshots the content, "
        "plans the audience and starts delivery (state `sending`). Happens once.",
        responses={202: CampaignSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        return services.campaign_send_now(campaign.pk, by=request.user)


class CampaignTestSendView(CampaignActionView):
    request_serializer = TestSendSerializer
    ok_status = status.HTTP_202_ACCEPTED

    @_action(
        "campaigns_test_send",
        "Send the campaign as it stands to one address, subject marked [Test], as the audience's first contact.",
        request=TestSendSerializer,
        responses={202: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        sent, rendered_as = services.campaign_test_send(
            campaign.pk, values["to"], by=request.user, variant_label=values["variant"]
        )
        message = sent[0]
        return {
            "message": message.pk,
            "to": message.email,
            "state": message.state,
            "rendered_as": rendered_as,
        }


class CampaignPauseView(CampaignActionView):
    request_serializer = PauseSerializer

    @_action("campaigns_pause", "Pause a sending campaign.", request=PauseSerializer)
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        return services.campaign_pause(campaign.pk, by=request.user, reason=values["reason"])


class CampaignResumeView(CampaignActionView):
    @_action("campaigns_resume", "Resume a paused campaign.")
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        return services.campaign_resume(campaign.pk, by=request.user)


class CampaignCancelView(CampaignActionView):
    @_action("campaigns_cancel", "Stop for good; nothing further is sent.")
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        return services.campaign_cancel(campaign.pk, by=request.user)


class CampaignCloneView(CampaignActionView):
    ok_status = status.HTTP_201_CREATED

    @_action("campaigns_clone", "A new draft with the same settings.", responses={201: CampaignSerializer})
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def act(self, campaign, values, request):
        return services.campaign_clone(campaign.pk, by=request.user)


class CampaignReportView(CampaignsScoped, generics.GenericAPIView):
    queryset = Campaign.objects.all()

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="campaigns_report")
    def get(self, request: Request, pk: int) -> Response:
        campaign = self.get_object()
        report = selectors.campaign_report(campaign)
        report["variants"] = [
            {"label": row["variant"].label, "subject": row["variant"].subject, "figures": row["figures"]}
            for row in report.get("variants", [])
        ]
        report["progress"] = selectors.campaign_progress(campaign)
        return Response(report)
