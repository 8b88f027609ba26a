"""REST API for delivery: transactional send, messages, events, bounces, relays (admin).

Thin views over the delivery services (relays, transactional) and selectors.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from delivery import relays, transactional
from delivery.bounces import rules as bounce_rules
from delivery.bounces.models import BounceEvent
from delivery.models import RELAY_EDITABLE_FIELDS, Message, MessageEvent, Relay, Security
from mailplatform.api.pagination import IdCursorPagination
from mailplatform.api.serializers import StrictSerializer
from mailplatform.errors import Invalid, PlatformError
from templates.compiler import TemplateError

IDEMPOTENCY_HEADER = "Idempotency-Key"


# --- transactional send ---


class SendSerializer(StrictSerializer):
    template = serializers.IntegerField(min_value=1, help_text="Template id.")
    to = serializers.CharField(
        max_length=320,
        help_text="A contact id (digits) or an email address; a bare address needs no contact.",
    )
    data = serializers.DictField(required=False, default=dict, help_text="Merge data the template sees.")


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "mailing",
            "contact",
            "email",
            "state",
            "attempts",
            "smtp_code",
            "smtp_reply",
            "sent_at",
            "created_at",
        ]
        read_only_fields = fields


class SendView(generics.GenericAPIView):
    """Send one template to one contact or address now. Retry with the same Idempotency-Key: it sends once."""

    write_scope = "send"
    extra_problem_responses = {"404": "No such template."}

    @extend_schema(
        request=SendSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Up to 200 characters. A repeated key returns the first message and sends nothing.",
            )
        ],
        responses={202: MessageSerializer, 200: MessageSerializer},
        operation_id="send",
    )
    def post(self, request: Request) -> Response:
        data = SendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None:
            key = key.strip()
            if not 1 <= len(key) <= 150:
                raise ValidationError({IDEMPOTENCY_HEADER: ["Must be 1 to 150 characters."]})
            # Keys are the caller's: two API keys using "1" must not see each other's message.
            key = f"api:{request.auth.prefix}:{key}"
        from templates.models import EmailTemplate

        template = EmailTemplate.objects.filter(
            pk=values["template"], kind=EmailTemplate.Kind.TEMPLATE
        ).first()
        if template is None or template.archived:
            raise ValidationError({"template": [f"No active template with id {values['template']}."]})
        try:
            message, replayed = transactional.transactional_request(
                template_id=template.pk, to=values["to"], data=values["data"], idempotency_key=key
            )
        except TemplateError as exc:  # the template no longer compiles: the request names it
            exc.field, exc.errors = "template", [("template", str(exc))]
            raise
        except PlatformError:
            raise
        except ValueError as exc:  # a stored template that cannot be read back
            raise Invalid(str(exc), field="template") from exc
        if replayed:
            response = Response(MessageSerializer(message).data, status=status.HTTP_200_OK)
            response["Idempotent-Replayed"] = "true"
            return response
        return Response(MessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)


class MessageDetailView(generics.GenericAPIView):
    read_scope = "events:read"
    serializer_class = MessageSerializer
    queryset = Message.objects.all()

    @extend_schema(operation_id="messages_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(MessageSerializer(self.get_object()).data)


# --- events and bounces ---


class EventSerializer(serializers.ModelSerializer):
    email = serializers.CharField(source="message.email")
    contact = serializers.IntegerField(source="message.contact_id", allow_null=True)

    class Meta:
        model = MessageEvent
        fields = ["id", "kind", "at", "message", "mailing", "email", "contact", "data"]
        read_only_fields = fields


def _time_param(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    value = parse_datetime(raw) if len(raw) < 64 else None
    if value is None:
        raise ValidationError({name: ["Must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z."]})
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def _within_time(queryset: QuerySet, request: Request) -> QuerySet:
    """Rows `at` or after `?since=` and before `?until=` (both ISO 8601, both optional)."""
    since, until = _time_param(request, "since"), _time_param(request, "until")
    if since:
        queryset = queryset.filter(at__gte=since)
    if until:
        queryset = queryset.filter(at__lt=until)
    return queryset


def _id_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 18:
        raise ValidationError({name: ["Must be a positive integer id."]})
    return int(raw)


EVENT_FILTERS = [
    OpenApiParameter("kind", str, enum=MessageEvent.Kind.values),
    OpenApiParameter("contact", int),
    OpenApiParameter("mailing", int),
    OpenApiParameter("since", str, description="ISO 8601; events at or after."),
    OpenApiParameter("until", str, description="ISO 8601; events before."),
]


class EventListView(generics.ListAPIView):
    """Message events (sent, bounced, complained, opened, clicked, unsubscribed...), newest first."""

    read_scope = "events:read"
    serializer_class = EventSerializer
    pagination_class = IdCursorPagination
    fixed_kind: str | None = None

    def get_queryset(self):
        events = MessageEvent.objects.select_related("message")
        kind = self.fixed_kind or self.request.query_params.get("kind")
        if kind:
            if kind not in MessageEvent.Kind.values:
                raise ValidationError({"kind": [f"Must be one of {', '.join(MessageEvent.Kind.values)}."]})
            events = events.filter(kind=kind)
        contact = _id_param(self.request, "contact")
        if contact:
            events = events.filter(message__contact_id=contact)
        mailing = _id_param(self.request, "mailing")
        if mailing:
            events = events.filter(mailing_id=mailing)
        return _within_time(events, self.request)

    @extend_schema(parameters=EVENT_FILTERS, operation_id="events_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class BounceSerializer(serializers.ModelSerializer):
    class Meta:
        model = BounceEvent
        fields = [
            "id",
            "at",
            "kind",
            "reason",
            "status",
            "diagnostic",
            "recipient",
            "contact_id",
            "message_id",
            "mailing_id",
            "source",
            "attributed_by",
            "action",
        ]
        read_only_fields = fields


BOUNCE_FILTERS = [
    OpenApiParameter("kind", str, enum=list(bounce_rules.KINDS)),
    OpenApiParameter("contact", int),
    OpenApiParameter("since", str, description="ISO 8601; bounces at or after."),
    OpenApiParameter("until", str, description="ISO 8601; bounces before."),
]


class BounceListView(generics.ListAPIView):
    """Classified bounces and complaints (hard, soft, block...) and what the policy did, newest first."""

    read_scope = "events:read"
    serializer_class = BounceSerializer
    pagination_class = IdCursorPagination

    def get_queryset(self):
        bounces = BounceEvent.objects.all()
        kind = self.request.query_params.get("kind")
        if kind:
            if kind not in bounce_rules.KINDS:
                raise ValidationError({"kind": [f"Must be one of {', '.join(bounce_rules.KINDS)}."]})
            bounces = bounces.filter(kind=kind)
        contact = _id_param(self.request, "contact")
        if contact:
            bounces = bounces.filter(contact_id=contact)
        return _within_time(bounces, self.request)

    @extend_schema(parameters=BOUNCE_FILTERS, operation_id="bounces_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- relays (admin only; the password is write-only) ---


class RelaySerializer(serializers.ModelSerializer):
    has_password = serializers.BooleanField()

    class Meta:
        model = Relay
        fields = [
            "id",
            *RELAY_EDITABLE_FIELDS,
            "has_password",
            "last_error",
            "last_error_at",
            "last_success_at",
            "backed_off_until",
            "created_at",
        ]
        read_only_fields = fields


class RelayWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    host = serializers.CharField(max_length=255)
    port = serializers.IntegerField(min_value=1, max_value=65535, default=587)
    security = serializers.ChoiceField(choices=Security.choices, required=False)
    verify_certificate = serializers.BooleanField(required=False, default=True)
    username = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Write-only; never returned.",
    )
    helo_name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    max_connections = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=4)
    per_second = serializers.FloatField(min_value=0, required=False, default=0)
    burst = serializers.IntegerField(min_value=0, required=False)
    per_hour = serializers.IntegerField(min_value=0, required=False, default=0)
    per_day = serializers.IntegerField(min_value=0, required=False, default=0)
    weight = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=100)
    enabled = serializers.BooleanField(required=False, default=True)


class RelayUpdateSerializer(RelayWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


def _save_relay(relay: Relay | None, values: dict[str, Any], by: Any) -> Relay:
    password = values.pop("password", None)
    return relays.relay_save(relay, by=by, password=password, **values)


class RelayListCreateView(generics.GenericAPIView):
    read_scope = write_scope = "relays:admin"
    serializer_class = RelaySerializer

    def get_queryset(self):
        return Relay.objects.all()

    @extend_schema(responses=RelaySerializer(many=True), operation_id="relays_list")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RelaySerializer(page, many=True).data)

    @extend_schema(
        request=RelayWriteSerializer, responses={201: RelaySerializer}, operation_id="relays_create"
    )
    def post(self, request: Request) -> Response:
        data = RelayWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        relay = _save_relay(None, dict(data.validated_data), request.user)
        return Response(RelaySerializer(relay).data, status=status.HTTP_201_CREATED)


class RelayDetailView(generics.GenericAPIView):
    read_scope = write_scope = "relays:admin"
    serializer_class = RelaySerializer
    queryset = Relay.objects.all()

    @extend_schema(operation_id="relays_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(RelaySerializer(self.get_object()).data)

    @extend_schema(request=RelayUpdateSerializer, operation_id="relays_update")
    def patch(self, request: Request, pk: int) -> Response:
        relay = self.get_object()
        data = RelayUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        relay = _save_relay(relay, dict(data.validated_data), request.user)
        return Response(RelaySerializer(relay).data)

    @extend_schema(responses={204: None}, operation_id="relays_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        relays.relay_delete(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
