"""REST API for contacts, lists, subscriptions, segments, suppressions and imports.

Thin views over contacts.services and contacts.selectors, the same calls the dashboard makes.
Bulk upsert goes through the CSV import service (COPY into a staging table, one merge), not a
serializer per row.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from contacts import selectors, services
from contacts.bulk import contacts_bulk_upsert
from contacts.models import (
    ConsentSource,
    Contact,
    ContactImport,
    ContactStatus,
    MailingList,
    Segment,
    Suppression,
)
from contacts.serializers import (
    BulkResultSerializer,
    BulkUpsertSerializer,
    ContactCreateSerializer,
    ContactDetailSerializer,
    ContactSerializer,
    ContactUpdateSerializer,
    ImportSerializer,
    ImportUploadSerializer,
    MailingListSerializer,
    MailingListWriteSerializer,
    SegmentSerializer,
    SegmentWriteSerializer,
    SubscribeSerializer,
    SubscriptionSerializer,
    SuppressionSerializer,
    SuppressionWriteSerializer,
    UnsubscribeSerializer,
    contact_json,
)
from mailplatform import jsonlimits
from mailplatform.api.errors import Conflict
from mailplatform.api.pagination import decode_keyset_cursor, keyset_page_size, keyset_response

READ, WRITE = "contacts:read", "contacts:write"


class ContactsScoped:
    read_scope = READ
    write_scope = WRITE


def _client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# --- helpers ---


def _existing_list_ids(ids: list[int], field: str = "lists") -> list[int]:
    ids = sorted(set(ids))
    found = set(MailingList.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({field: [f"No list with id {missing[0]}."]})
    return ids


def _contact_page(request: Request, **filters: Any) -> Response:
    cursor = decode_keyset_cursor(request.query_params.get("cursor"))
    after_id = cursor[1] if cursor and cursor[0] == "after" else None
    before_id = cursor[1] if cursor and cursor[0] == "before" else None
    contacts, newer, older = selectors.contacts_page(
        after_id=after_id, before_id=before_id, size=keyset_page_size(request), **filters
    )
    return keyset_response(
        request,
        [contact_json(c) for c in contacts],
        first_id=contacts[0].pk if contacts else None,
        last_id=contacts[-1].pk if contacts else None,
        newer=newer,
        older=older,
    )


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationError({name: ["Must be a positive integer id."]})
    return value


# --- contacts ---

CONTACT_FILTERS = [
    OpenApiParameter(
        "search", str, description="Prefix of the address, of its domain (`@example.com`) or a name."
    ),
    OpenApiParameter("status", str, enum=ContactStatus.values),
    OpenApiParameter("list", int, description="Only contacts on this list (not unsubscribed from it)."),
    OpenApiParameter("segment", int, description="Only contacts in this segment."),
]


class ContactListCreateView(ContactsScoped, generics.GenericAPIView):
    serializer_class = ContactSerializer

    @extend_schema(
        parameters=CONTACT_FILTERS, responses=ContactSerializer(many=True), operation_id="contacts_list"
    )
    def get(self, request: Request) -> Response:
        status_filter = request.query_params.get("status", "")
        if status_filter and status_filter not in ContactStatus.values:
            raise ValidationError({"status": [f"Must be one of {', '.join(ContactStatus.values)}."]})
        list_id, segment_id = _int_param(request, "list"), _int_param(request, "segment")
        if segment_id and not Segment.objects.filter(pk=segment_id).exists():
            raise ValidationError({"segment": [f"No segment with id {segment_id}."]})
        return _contact_page(
            request,
            search=request.query_params.get("search", "")[:320],
            status=status_filter,
            list_id=list_id,
            segment_id=segment_id,
        )

    @extend_schema(
        request=ContactCreateSerializer,
        responses={201: ContactDetailSerializer},
        operation_id="contacts_create",
    )
    def post(self, request: Request) -> Response:
        data = ContactCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        list_ids = _existing_list_ids(values["lists"])
        contact = services.contact_create(
            email=values["email"],
            first_name=values["first_name"],
            last_name=values["last_name"],
            attributes=values["attributes"],
            language=values["language"],
            timezone_name=values["timezone"],
            list_ids=list_ids,
            consent_source=ConsentSource.API,
            consent_ip=_client_ip(request),
            by=request.user,
        )
        return Response(ContactDetailSerializer(contact).data, status=status.HTTP_201_CREATED)


class ContactDetailView(ContactsScoped, generics.GenericAPIView):
    serializer_class = ContactDetailSerializer
    queryset = Contact.objects.prefetch_related("subscriptions__mailing_list")

    @extend_schema(operation_id="contacts_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(ContactDetailSerializer(self.get_object()).data)

    @extend_schema(request=ContactUpdateSerializer, operation_id="contacts_update")
    def patch(self, request: Request, pk: int) -> Response:
        contact = self.get_object()
        data = ContactUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.contact_update(
            contact,
            first_name=values.get("first_name", contact.first_name),
            last_name=values.get("last_name", contact.last_name),
            attributes=values.get("attributes", contact.attributes),
            language=values.get("language"),
            timezone_name=values.get("timezone"),
            by=request.user,
        )
        return Response(ContactDetailSerializer(self.get_object()).data)

    @extend_schema(
        responses={204: None},
        operation_id="contacts_erase",
        description="GDPR erasure: the contact, its attributes and subscriptions are deleted for good.",
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.contact_erase(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactByEmailView(ContactsScoped, generics.GenericAPIView):
    serializer_class = ContactDetailSerializer
    may_404 = True

    @extend_schema(parameters=[OpenApiParameter("email", str, required=True)], operation_id="contacts_lookup")
    def get(self, request: Request) -> Response:
        email = request.query_params.get("email", "")
        if not email:
            raise ValidationError({"email": ["This query parameter is required."]})
        contact = selectors.contact_by_email(email[:320])
        if contact is None:
            raise NotFound("No contact with this address.")
        return Response(ContactDetailSerializer(contact).data)


class ContactExportView(ContactsScoped, generics.GenericAPIView):
    """GDPR access request: everything held about the contact (recorded in the audit log)."""

    queryset = Contact.objects.all()
    read_scope = READ

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="contacts_export")
    def get(self, request: Request, pk: int) -> Response:
        return Response(services.contact_export_data(self.get_object(), by=request.user))


class ContactUnsubscribeView(ContactsScoped, generics.GenericAPIView):
    queryset = Contact.objects.all()

    @extend_schema(
        request=UnsubscribeSerializer,
        responses=inline_serializer("UnsubscribeResult", {"lists_left": serializers.IntegerField()}),
        operation_id="contacts_unsubscribe",
    )
    def post(self, request: Request, pk: int) -> Response:
        contact = self.get_object()
        data = UnsubscribeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lists = data.validated_data["lists"]
        list_ids = _existing_list_ids(lists) if lists is not None else None
        left = services.contact_unsubscribe(contact.pk, list_ids=list_ids, source="api", by=request.user)
        return Response({"lists_left": left})


class ContactSubscriptionsView(ContactsScoped, generics.GenericAPIView):
    queryset = Contact.objects.all()
    serializer_class = SubscriptionSerializer
    pagination_class = None

    @extend_schema(responses=SubscriptionSerializer(many=True), operation_id="contacts_subscriptions_list")
    def get(self, request: Request, pk: int) -> Response:
        contact = self.get_object()
        return Response(SubscriptionSerializer(selectors.subscriptions_of(contact), many=True).data)

    @extend_schema(
        request=SubscribeSerializer,
        responses={201: SubscriptionSerializer},
        operation_id="contacts_subscribe",
    )
    def post(self, request: Request, pk: int) -> Response:
        contact = self.get_object()
        data = SubscribeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mailing_list = MailingList.objects.filter(pk=data.validated_data["list"]).first()
        if mailing_list is None:
            raise ValidationError({"list": [f"No list with id {data.validated_data['list']}."]})
        if services.contact_protected(contact):
            raise Conflict(f"The contact is {contact.status}: only the person can subscribe again.")
        subscription = services.contact_subscribe(
            contact, mailing_list, confirmed=data.validated_data["confirmed"], source="api", by=request.user
        )
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)


class ContactBulkUpsertView(ContactsScoped, generics.GenericAPIView):
    """Up to 10,000 contacts in one call, merged by the import service in one transaction."""

    @extend_schema(
        request=BulkUpsertSerializer, responses=BulkResultSerializer, operation_id="contacts_bulk_upsert"
    )
    def post(self, request: Request) -> Response:
        with _cycle_collection_paused():  # request.data parses the body here
            data = BulkUpsertSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
            list_ids = _existing_list_ids(values["lists"])
            result, errors = contacts_bulk_upsert(
                values["contacts"], mode=values["mode"], list_ids=list_ids, by=request.user
            )
            return Response({**result.counts(), "errors": errors})


@contextlib.contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk call runs. Its 10,000 rows parse into 30,000+
    dicts and strings; the collector, counting them as they are made, promoted them and ran a full
    collection of the whole process's heap every third call or so (~100 ms each: about a quarter
    of a call's CPU). Parsed JSON is a tree, so none of it is in a cycle: the rows are freed by
    their reference counts when the call ends, and whatever else the call leaves in a cycle is
    collected by the next collection after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- lists ---


class MailingListListCreateView(ContactsScoped, generics.GenericAPIView):
    serializer_class = MailingListSerializer

    def get_queryset(self):
        return MailingList.objects.all()

    @extend_schema(responses=MailingListSerializer(many=True), operation_id="lists_list")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MailingListSerializer(page, many=True).data)

    @extend_schema(
        request=MailingListWriteSerializer,
        responses={201: MailingListSerializer},
        operation_id="lists_create",
    )
    def post(self, request: Request) -> Response:
        data = MailingListWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if MailingList.objects.filter(name=data.validated_data["name"]).exists():
            raise Conflict(f"A list named {data.validated_data['name']!r} exists already.")
        mailing_list = services.mailing_list_save(None, **data.validated_data, by=request.user)
        return Response(MailingListSerializer(mailing_list).data, status=status.HTTP_201_CREATED)


class MailingListDetailView(ContactsScoped, generics.GenericAPIView):
    serializer_class = MailingListSerializer
    queryset = MailingList.objects.all()

    @extend_schema(operation_id="lists_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(MailingListSerializer(self.get_object()).data)

    @extend_schema(request=MailingListWriteSerializer, operation_id="lists_update")
    def patch(self, request: Request, pk: int) -> Response:
        mailing_list = self.get_object()
        current = {
            "name": mailing_list.name,
            "description": mailing_list.description,
            "opt_in": mailing_list.opt_in,
            "is_public": mailing_list.is_public,
        }
        data = MailingListWriteSerializer(
            data={**current, **request.data} if isinstance(request.data, dict) else request.data
        )
        data.is_valid(raise_exception=True)
        if MailingList.objects.filter(name=data.validated_data["name"]).exclude(pk=mailing_list.pk).exists():
            raise Conflict(f"A list named {data.validated_data['name']!r} exists already.")
        services.mailing_list_save(mailing_list, **data.validated_data, by=request.user)
        return Response(MailingListSerializer(mailing_list).data)

    @extend_schema(responses={204: None}, operation_id="lists_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        services.mailing_list_delete(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MailingListMembersView(ContactsScoped, generics.GenericAPIView):
    queryset = MailingList.objects.all()
    serializer_class = ContactSerializer

    @extend_schema(responses=ContactSerializer(many=True), operation_id="lists_members")
    def get(self, request: Request, pk: int) -> Response:
        return _contact_page(request, list_id=self.get_object().pk)


# --- segments ---


class SegmentListCreateView(ContactsScoped, generics.GenericAPIView):
    serializer_class = SegmentSerializer

    def get_queryset(self):
        return Segment.objects.all()

    @extend_schema(responses=SegmentSerializer(many=True), operation_id="segments_list")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SegmentSerializer(page, many=True).data)

    @extend_schema(
        request=SegmentWriteSerializer, responses={201: SegmentSerializer}, operation_id="segments_create"
    )
    def post(self, request: Request) -> Response:
        data = SegmentWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Segment.objects.filter(name=data.validated_data["name"]).exists():
            raise Conflict(f"A segment named {data.validated_data['name']!r} exists already.")
        segment = services.segment_save(None, **data.validated_data, by=request.user)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailView(ContactsScoped, generics.GenericAPIView):
    serializer_class = SegmentSerializer
    queryset = Segment.objects.all()

    @extend_schema(operation_id="segments_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(SegmentSerializer(self.get_object()).data)

    @extend_schema(request=SegmentWriteSerializer, operation_id="segments_update")
    def patch(self, request: Request, pk: int) -> Response:
        segment = self.get_object()
        current = {"name": segment.name, "description": segment.description, "rules": segment.rules}
        data = SegmentWriteSerializer(
            data={**current, **request.data} if isinstance(request.data, dict) else request.data
        )
        data.is_valid(raise_exception=True)
        if Segment.objects.filter(name=data.validated_data["name"]).exclude(pk=segment.pk).exists():
            raise Conflict(f"A segment named {data.validated_data['name']!r} exists already.")
        services.segment_save(segment, **data.validated_data, by=request.user)
        return Response(SegmentSerializer(segment).data)

    @extend_schema(responses={204: None}, operation_id="segments_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        services.segment_delete(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentCountView(ContactsScoped, generics.GenericAPIView):
    queryset = Segment.objects.all()

    @extend_schema(
        responses=inline_serializer("SegmentCount", {"count": serializers.IntegerField()}),
        operation_id="segments_count",
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response({"count": selectors.segment_count(self.get_object().rules)})


class SegmentMembersView(ContactsScoped, generics.GenericAPIView):
    queryset = Segment.objects.all()
    serializer_class = ContactSerializer

    @extend_schema(responses=ContactSerializer(many=True), operation_id="segments_members")
    def get(self, request: Request, pk: int) -> Response:
        return _contact_page(request, segment_id=self.get_object().pk)


# --- suppressions ---


class SuppressionListCreateView(ContactsScoped, generics.GenericAPIView):
    serializer_class = SuppressionSerializer

    def get_queryset(self):
        return Suppression.objects.all()

    @extend_schema(responses=SuppressionSerializer(many=True), operation_id="suppressions_list")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SuppressionSerializer(page, many=True).data)

    @extend_schema(
        request=SuppressionWriteSerializer,
        responses={201: SuppressionSerializer},
        operation_id="suppressions_create",
    )
    def post(self, request: Request) -> Response:
        data = SuppressionWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        suppression = services.suppression_add(
            data.validated_data["value"], reason=data.validated_data["reason"], source="api", by=request.user
        )
        return Response(SuppressionSerializer(suppression).data, status=status.HTTP_201_CREATED)


class SuppressionDetailView(ContactsScoped, generics.GenericAPIView):
    serializer_class = SuppressionSerializer
    queryset = Suppression.objects.all()

    @extend_schema(operation_id="suppressions_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(SuppressionSerializer(self.get_object()).data)

    @extend_schema(responses={204: None}, operation_id="suppressions_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        services.suppression_remove(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- imports ---


class ImportListCreateView(ContactsScoped, generics.GenericAPIView):
    serializer_class = ImportSerializer
    parser_classes = [MultiPartParser]

    def get_queryset(self):
        return ContactImport.objects.prefetch_related("mailing_lists")

    @extend_schema(responses=ImportSerializer(many=True), operation_id="imports_list")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ImportSerializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses={202: ImportSerializer},
        operation_id="imports_create",
    )
    def post(self, request: Request) -> Response:
        data = ImportUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        list_ids = _existing_list_ids(_parse_ids(values["lists"]))
        mapping = _parse_mapping(values["mapping"])
        upload = values["file"]
        path = services.import_upload_save(upload)
        contact_import = services.contact_import_create(
            path=str(path),
            filename=Path(upload.name or "upload.csv").name,
            mode=values["mode"],
            list_ids=list_ids,
            mapping=mapping,
            by=request.user,
        )
        services.contact_import_enqueue(contact_import)
        return Response(ImportSerializer(contact_import).data, status=status.HTTP_202_ACCEPTED)


def _parse_ids(raw: str) -> list[int]:
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise ValidationError({"lists": ["Must be comma-separated list ids, e.g. 3,7."]}) from exc


def _parse_mapping(raw: str) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        mapping = jsonlimits.loads(raw)
    except jsonlimits.JSONTooDeep as exc:
        raise ValidationError({"mapping": [f"Not accepted: {exc}."]}) from exc
    except json.JSONDecodeError as exc:
        raise ValidationError({"mapping": [f"Not valid JSON: {exc.msg}."]}) from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ValidationError({"mapping": ['Must be an object of strings, e.g. {"0": "email"}.']})
    return mapping


class ImportDetailView(ContactsScoped, generics.GenericAPIView):
    serializer_class = ImportSerializer
    queryset = ContactImport.objects.prefetch_related("mailing_lists")

    @extend_schema(operation_id="imports_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        contact_import = self.get_object()
        body = ImportSerializer(contact_import).data
        live = services.import_progress(contact_import.pk)
        if live:
            body["percent"] = live.get("percent", body["percent"])
        return Response(body)


class ImportErrorReportView(ContactsScoped, generics.GenericAPIView):
    """The import's bad rows as CSV (the file's own columns, then `import row` and `import problem`); 404 when it had none."""

    queryset = ContactImport.objects.all()

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR}, operation_id="imports_error_report")
    def get(self, request: Request, pk: int):
        contact_import = self.get_object()
        report = Path(contact_import.report_path) if contact_import.report_path else None
        if report is None or not report.exists():
            raise NotFound("This import has no bad rows.")
        response = FileResponse(report.open("rb"), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{contact_import.pk}-errors.csv"'
        return response
