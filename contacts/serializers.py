"""The API's serializers for contacts: what a request may hold and what a response shows.

`contact_json` builds ContactSerializer's output directly for pages of contacts (a test holds the two
equal). The views that use these live in contacts/api.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from contacts.models import (
    Contact,
    ContactImport,
    ImportMode,
    MailingList,
    OptIn,
    Segment,
    Subscription,
    Suppression,
)
from contacts.validation import check_contact_language, check_contact_timezone
from mailplatform.api.serializers import StrictSerializer
from mailplatform.locales import LANGUAGE_MAX, TIMEZONE_MAX

BULK_MAX = 10_000


class SubscriptionSerializer(serializers.ModelSerializer):
    list = serializers.IntegerField(source="mailing_list_id")
    list_name = serializers.CharField(source="mailing_list.name")

    class Meta:
        model = Subscription
        fields = ["list", "list_name", "status", "source", "created_at", "confirmed_at", "unsubscribed_at"]
        read_only_fields = fields


class ContactSerializer(serializers.ModelSerializer):
    attributes = serializers.DictField()

    class Meta:
        model = Contact
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "attributes",
            "language",
            "timezone",
            "status",
            "consent_at",
            "consent_source",
            "last_sent_at",
            "last_opened_at",
            "last_clicked_at",
            "bounce_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ContactDetailSerializer(ContactSerializer):
    subscriptions = SubscriptionSerializer(many=True)

    class Meta(ContactSerializer.Meta):
        fields = [*ContactSerializer.Meta.fields, "subscriptions"]
        read_only_fields = fields


class CheckedCharField(serializers.CharField):
    """A string a contacts check turns into its stored form: a language tag (`pt-BR`) or an IANA
    zone (`Europe/Berlin`); blank means the install's default."""

    def __init__(self, check: Any, **kwargs: Any) -> None:
        self.check = check
        super().__init__(allow_blank=True, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        try:
            return self.check(super().to_internal_value(data))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ContactCreateSerializer(StrictSerializer):
    email = serializers.CharField(max_length=320)
    first_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    attributes = serializers.DictField(required=False, default=dict)
    language = CheckedCharField(check_contact_language, max_length=LANGUAGE_MAX, required=False, default="")
    timezone = CheckedCharField(check_contact_timezone, max_length=TIMEZONE_MAX, required=False, default="")
    lists = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, default=list)


class ContactUpdateSerializer(StrictSerializer):
    first_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    attributes = serializers.DictField(required=False, help_text="Replaces the contact's attributes.")
    language = CheckedCharField(check_contact_language, max_length=LANGUAGE_MAX, required=False)
    timezone = CheckedCharField(check_contact_timezone, max_length=TIMEZONE_MAX, required=False)


class UnsubscribeSerializer(StrictSerializer):
    lists = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_null=True,
        default=None,
        help_text="Leave these lists; omit to unsubscribe from everything (a global opt-out).",
    )


class SubscribeSerializer(StrictSerializer):
    list = serializers.IntegerField(min_value=1)
    confirmed = serializers.BooleanField(
        default=True, help_text="false leaves the subscription unconfirmed (double opt-in pending)."
    )


class BulkContactSerializer(StrictSerializer):
    """One row (for the schema; BulkRowsField checks the rows, the import checks language and zone)."""

    email = serializers.CharField(max_length=320, allow_blank=True)
    first_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    language = serializers.CharField(max_length=LANGUAGE_MAX, required=False, allow_blank=True, default="")
    timezone = serializers.CharField(max_length=TIMEZONE_MAX, required=False, allow_blank=True, default="")
    attributes = serializers.DictField(required=False, default=dict)


@extend_schema_field(BulkContactSerializer(many=True))
class BulkRowsField(serializers.Field):
    """The rows, checked in one tight loop: 10,000 serializers would cost more than the import itself."""

    LIMITS = {
        "email": 320,
        "first_name": 200,
        "last_name": 200,
        "language": LANGUAGE_MAX,
        "timezone": TIMEZONE_MAX,
    }

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            raise ValidationError("Must be a list of contacts.")
        if not 1 <= len(data) <= BULK_MAX:
            raise ValidationError(f"Must hold 1 to {BULK_MAX:,} contacts; it holds {len(data):,}.")
        problems: dict[str, list[str]] = {}
        for index, row in enumerate(data):
            for field, message in _row_problems(row, self.LIMITS):
                problems[f"[{index}]{'.' + field if field else ''}"] = [message]
            if len(problems) >= 20:
                break
        if problems:
            raise ValidationError(problems)
        return data


def _row_problems(row: Any, limits: dict[str, int]) -> list[tuple[str, str]]:
    if not isinstance(row, dict):
        return [("", "Must be an object.")]
    found = []
    for key, value in row.items():
        if key in limits:
            if not isinstance(value, str):
                found.append((key, "Must be a string."))
            elif len(value) > limits[key]:
                found.append((key, f"Ensure this field has no more than {limits[key]} characters."))
        elif key == "attributes":
            if not isinstance(value, dict):
                found.append((key, "Must be an object."))
        else:
            found.append((key, "Unknown field."))
    if "email" not in row:
        found.append(("email", "This field is required."))
    return found


class BulkUpsertSerializer(StrictSerializer):
    contacts = BulkRowsField()
    lists = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, default=list)
    mode = serializers.ChoiceField(
        choices=[ImportMode.UPSERT, ImportMode.ADD], default=ImportMode.UPSERT, required=False
    )


class BulkResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    invalid = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    protected = serializers.IntegerField()
    errors = serializers.ListField(
        child=inline_serializer(
            "BulkRowError",
            {
                "index": serializers.IntegerField(),
                "email": serializers.CharField(),
                "message": serializers.CharField(),
            },
        )
    )


class MailingListSerializer(serializers.ModelSerializer):
    class Meta:
        model = MailingList
        fields = ["id", "name", "description", "opt_in", "is_public", "public_id", "created_at", "updated_at"]
        read_only_fields = fields


class MailingListWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    opt_in = serializers.ChoiceField(choices=OptIn.choices, required=False, default=OptIn.DOUBLE)
    is_public = serializers.BooleanField(required=False, default=False)


class SegmentSerializer(serializers.ModelSerializer):
    rules = serializers.JSONField()

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rules", "created_at", "updated_at"]
        read_only_fields = fields


class SegmentWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    rules = serializers.DictField(
        help_text='{"match": "all"|"any", "groups": [{"match": ..., "conditions": [...]}]}'
    )


class SuppressionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suppression
        fields = ["id", "value", "kind", "reason", "source", "created_at"]
        read_only_fields = fields


class SuppressionWriteSerializer(StrictSerializer):
    value = serializers.CharField(
        max_length=320, help_text="An address, or a domain (example.com or @example.com)."
    )
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ImportSerializer(serializers.ModelSerializer):
    lists = serializers.PrimaryKeyRelatedField(source="mailing_lists", many=True, read_only=True)
    percent = serializers.IntegerField()
    has_error_report = serializers.SerializerMethodField()

    class Meta:
        model = ContactImport
        fields = [
            "id",
            "filename",
            "mode",
            "lists",
            "status",
            "percent",
            "rows",
            "created",
            "updated",
            "unchanged",
            "invalid",
            "duplicates",
            "protected",
            "error",
            "has_error_report",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_has_error_report(self, obj: ContactImport) -> bool:
        return bool(obj.report_path)


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A CSV file with a header row naming an `email` column.")
    mode = serializers.ChoiceField(choices=ImportMode.choices, required=False, default=ImportMode.UPSERT)
    lists = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Comma-separated list ids to subscribe to."
    )
    mapping = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text='JSON: {"<column number from 0>": "email"|"first_name"|"last_name"|"attr:<name>"|""}.',
    )


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def contact_json(contact: Contact) -> dict[str, Any]:
    """ContactSerializer's output, built directly: a page of 100 costs ~1 ms instead of ~15."""
    return {
        "id": contact.pk,
        **contact.own_values(),
        "consent_at": _iso(contact.consent_at),
        "consent_source": contact.consent_source,
        "last_sent_at": _iso(contact.last_sent_at),
        "last_opened_at": _iso(contact.last_opened_at),
        "last_clicked_at": _iso(contact.last_clicked_at),
        "bounce_count": contact.bounce_count,
        "created_at": _iso(contact.created_at),
        "updated_at": _iso(contact.updated_at),
    }
