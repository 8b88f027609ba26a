"""Serializer base for API input: unknown fields and wrong JSON types are errors that name the field."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

_STRING_FIELDS = (
    serializers.CharField,
    serializers.ChoiceField,
    serializers.DateTimeField,
    serializers.DateField,
    serializers.UUIDField,
)
_NUMBER_FIELDS = (serializers.IntegerField, serializers.FloatField, serializers.DecimalField)


def _type_error(field: serializers.Field, value: Any) -> str | None:
    if value is None:
        return None  # allow_null is the field's own business
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else "Must be an integer."
    if isinstance(field, _NUMBER_FIELDS):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "Must be a number."
    if isinstance(
        field, serializers.MultipleChoiceField | serializers.ListField | serializers.ListSerializer
    ):
        return None if isinstance(value, list) else "Must be a list."
    if isinstance(field, serializers.DictField):
        return None if isinstance(value, dict) else "Must be an object."
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        return None if isinstance(value, int) and not isinstance(value, bool) else "Must be an integer id."
    if isinstance(field, serializers.ManyRelatedField):
        return None if isinstance(value, list) else "Must be a list of ids."
    if isinstance(field, _STRING_FIELDS):
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.Serializer):
        return None if isinstance(value, dict) else "Must be an object."
    return None


class StrictSerializer(serializers.Serializer):
    """JSON input is taken as typed: `"age": "12"` is not an integer, `{"nme": ...}` is not ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and not hasattr(data, "getlist"):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            errors: dict[str, list[str]] = {}
            for name in data:
                if name not in writable:
                    errors[name] = [
                        "Unknown field." if name not in self.fields else "This field is read-only."
                    ]
            for name, field in self.fields.items():
                if name in data and not field.read_only:
                    message = _type_error(field, data[name])
                    if message:
                        errors[name] = [message]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass
