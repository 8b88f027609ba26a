"""REST API for email templates: CRUD over templates.services, versions, archive, previews.

A preview for a real contact reads the contact's merge data through mailplatform.lookups (contacts
offers it): this app imports no other app.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from mailplatform import lookups
from mailplatform.api.serializers import StrictSerializer
from templates import selectors, services
from templates.models import EmailTemplate, TemplateVersion


class TemplatesScoped:
    read_scope = "templates:read"
    write_scope = "templates:write"


class TemplateSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="current_version.number", allow_null=True, default=None)

    class Meta:
        model = EmailTemplate
        fields = [
            "id",
            "name",
            "kind",
            "subject",
            "preheader",
            "html",
            "text",
            "layout",
            "transactional",
            "archived",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TemplateVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = TemplateVersion
        fields = ["id", "number", "name", "subject", "note", "uses_logic", "created_at"]
        read_only_fields = fields


class TemplateWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=EmailTemplate.Kind.choices, default=EmailTemplate.Kind.TEMPLATE)
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True, default="")
    preheader = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    html = serializers.CharField()
    text = serializers.CharField(required=False, allow_blank=True, default="")
    layout = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    transactional = serializers.BooleanField(required=False, default=False)


class TemplateUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True)
    preheader = serializers.CharField(max_length=300, required=False, allow_blank=True)
    html = serializers.CharField(required=False)
    text = serializers.CharField(required=False, allow_blank=True)
    layout = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    transactional = serializers.BooleanField(required=False)
    archived = serializers.BooleanField(required=False)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


def _layout(layout_id: int | None) -> EmailTemplate | None:
    if layout_id is None:
        return None
    layout = EmailTemplate.objects.filter(pk=layout_id, kind=EmailTemplate.Kind.LAYOUT).first()
    if layout is None:
        raise ValidationError({"layout": [f"No base layout with id {layout_id}."]})
    return layout


def _all_templates() -> QuerySet[EmailTemplate]:
    return EmailTemplate.objects.select_related("current_version")


class TemplateListCreateView(TemplatesScoped, generics.GenericAPIView):
    serializer_class = TemplateSerializer

    def get_queryset(self):
        archived = self.request.query_params.get("archived", "false")
        if archived not in ("true", "false"):
            raise ValidationError({"archived": ["Must be true or false."]})
        kind = self.request.query_params.get("kind") or None
        if kind is not None and kind not in EmailTemplate.Kind.values:
            raise ValidationError({"kind": [f"Must be one of {', '.join(EmailTemplate.Kind.values)}."]})
        return selectors.template_list(archived=archived == "true", kind=kind).select_related(
            "current_version"
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "archived", bool, description="List archived templates instead (default false)."
            ),
            OpenApiParameter("kind", str, enum=EmailTemplate.Kind.values),
        ],
        responses=TemplateSerializer(many=True),
        operation_id="templates_list",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset().order_by("-id"))
        return self.get_paginated_response(TemplateSerializer(page, many=True).data)

    @extend_schema(
        request=TemplateWriteSerializer, responses={201: TemplateSerializer}, operation_id="templates_create"
    )
    def post(self, request: Request) -> Response:
        data = TemplateWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["layout"] = _layout(values["layout"])
        template = services.template_create(**values, by=request.user)
        return Response(
            TemplateSerializer(_all_templates().get(pk=template.pk)).data, status=status.HTTP_201_CREATED
        )


class TemplateDetailView(TemplatesScoped, generics.GenericAPIView):
    serializer_class = TemplateSerializer

    def get_queryset(self):
        return _all_templates()

    @extend_schema(operation_id="templates_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(TemplateSerializer(self.get_object()).data)

    @extend_schema(
        request=TemplateUpdateSerializer,
        operation_id="templates_update",
        description="Saves the changes as a new version; campaigns already sending keep their snapshot.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        template = self.get_object()
        data = TemplateUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        note = changes.pop("note")
        archived = changes.pop("archived", None)
        if "layout" in changes:
            changes["layout"] = _layout(changes["layout"])
        if changes:
            services.template_update(template.pk, by=request.user, note=note, **changes)
        if archived is not None and archived != template.archived:
            services.template_set_archived(template.pk, archived, by=request.user)
        return Response(TemplateSerializer(self.get_object()).data)

    @extend_schema(
        responses={204: None},
        operation_id="templates_archive",
        description="Archives the template (campaigns that used it keep their snapshot); PATCH archived=false restores it.",
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.template_set_archived(self.get_object().pk, True, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateVersionListView(TemplatesScoped, generics.GenericAPIView):
    serializer_class = TemplateVersionSerializer
    queryset = EmailTemplate.objects.all()

    @extend_schema(responses=TemplateVersionSerializer(many=True), operation_id="templates_versions")
    def get(self, request: Request, pk: int) -> Response:
        template = self.get_object()
        page = self.paginate_queryset(selectors.template_versions(template.pk).order_by("-id"))
        return self.get_paginated_response(TemplateVersionSerializer(page, many=True).data)


# --- template preview, for a real contact or for given data ---


class PreviewSerializer(StrictSerializer):
    contact = serializers.IntegerField(
        min_value=1, required=False, help_text="Render with this contact's fields."
    )
    data = serializers.DictField(
        required=False, default=dict, help_text="Extra merge data (as transactional send)."
    )


class TemplatePreviewView(generics.GenericAPIView):
    """Render the template's saved content as a recipient would see it (nothing is sent)."""

    # A preview writes nothing: reading templates is enough, for POST as well.
    read_scope = write_scope = "templates:read"

    @extend_schema(
        request=PreviewSerializer,
        responses=inline_serializer(
            "RenderedPreview",
            {
                "subject": serializers.CharField(),
                "html": serializers.CharField(),
                "text": serializers.CharField(),
            },
        ),
        operation_id="templates_preview",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = PreviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = EmailTemplate.objects.select_related("layout").filter(pk=pk).first()
        if template is None:
            raise NotFound("No such template.")
        merge: dict[str, Any] = dict(data.validated_data["data"])
        contact_id = data.validated_data.get("contact")
        if contact_id is not None:
            merge_data = lookups.ask(lookups.CONTACT_MERGE_DATA)
            contact = merge_data([contact_id]).get(contact_id) if merge_data is not None else None
            if contact is None:
                raise ValidationError({"contact": [f"No contact with id {contact_id}."]})
            merge["contact"] = contact
        _, rendered = selectors.saved_template_preview(template, data=merge)
        return Response({"subject": rendered.subject, "html": rendered.html, "text": rendered.text})
