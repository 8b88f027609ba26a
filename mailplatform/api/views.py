"""The platform's own endpoints: who am I, webhook subscriptions and their delivery log."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import Resolver404, resolve
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mailplatform import selectors, services, webhooks
from mailplatform.api.errors import problem
from mailplatform.api.serializers import StrictSerializer
from mailplatform.models import WebhookDelivery, WebhookEndpoint


class KeyInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    owner = serializers.CharField()
    role = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)


class KeyInfoView(APIView):
    """The key making the request: its scopes and owner. Any valid key may ask."""

    no_scope_required = True

    @extend_schema(responses=KeyInfoSerializer, operation_id="key_info")
    def get(self, request: Request) -> Response:
        key = request.auth
        return Response(
            KeyInfoSerializer(
                {
                    "name": key.name,
                    "prefix": key.display_prefix,
                    "scopes": key.scopes,
                    "owner": request.user.username,
                    "role": request.user.role,
                    "expires_at": key.expires_at,
                }
            ).data
        )


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "active", "created_at"]
        read_only_fields = fields


class WebhookCreateSerializer(StrictSerializer):
    url = serializers.URLField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=webhooks.EVENT_TYPES),
        min_length=1,
        max_length=len(webhooks.EVENT_TYPES),
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class WebhookCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret; shown only in this response.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookUpdateSerializer(StrictSerializer):
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=webhooks.EVENT_TYPES), min_length=1, required=False
    )
    active = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "payload",
        ]
        read_only_fields = fields


class WebhookListCreateView(generics.GenericAPIView):
    read_scope = write_scope = "webhooks:manage"
    serializer_class = WebhookEndpointSerializer

    def get_queryset(self):
        return selectors.webhook_endpoints()

    @extend_schema(responses=WebhookEndpointSerializer(many=True), operation_id="webhooks_list")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WebhookEndpointSerializer(page, many=True).data)

    @extend_schema(
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer},
        operation_id="webhooks_create",
    )
    def post(self, request: Request) -> Response:
        data = WebhookCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint, secret = services.webhook_endpoint_create(**data.validated_data, by=request.user)
        except services.WebhookError as exc:
            raise ValidationError({"url": [str(exc)]}) from exc
        endpoint.secret = secret
        return Response(WebhookCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(generics.GenericAPIView):
    read_scope = write_scope = "webhooks:manage"
    serializer_class = WebhookEndpointSerializer

    def get_queryset(self):
        return selectors.webhook_endpoints()

    @extend_schema(operation_id="webhooks_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookEndpointSerializer(self.get_object()).data)

    @extend_schema(request=WebhookUpdateSerializer, operation_id="webhooks_update")
    def patch(self, request: Request, pk: int) -> Response:
        endpoint = self.get_object()
        data = WebhookUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.webhook_endpoint_update(endpoint, by=request.user, **data.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None}, operation_id="webhooks_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        services.webhook_endpoint_delete(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListView(generics.ListAPIView):
    read_scope = "webhooks:manage"
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self):
        endpoint = get_object_or_404(selectors.webhook_endpoints(), pk=self.kwargs["pk"])
        return selectors.webhook_deliveries(endpoint=endpoint)


class NotFoundView(APIView):
    """Anything under /api/v1/ that matched no endpoint: a problem document, not an HTML page."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    no_scope_required = True

    def dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.request = self.initialize_request(request, *args, **kwargs)
        self.headers = self.default_response_headers
        detail = "No API endpoint at this path."
        if not request.path.endswith("/"):
            try:
                match = resolve(request.path + "/")
            except Resolver404:
                match = None
            if match is not None and getattr(match.func, "view_class", None) is not NotFoundView:
                detail += f" Did you mean {request.path}/ ?"
        response = Response(
            problem(404, detail, code="not_found", instance=request.path),
            status=404,
            content_type="application/problem+json",
        )
        return self.finalize_response(self.request, response, *args, **kwargs)
