"""JSON bodies read with a size bound: a chunked upload without Content-Length cannot exhaust memory."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from mailplatform import jsonlimits
from mailplatform.api.errors import PayloadTooLarge


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The request body is not UTF-8 (byte {exc.start}).") from exc
        try:
            return jsonlimits.loads(text, parse_constant=_reject_constant)
        except jsonlimits.JSONTooDeep as exc:
            raise ParseError(f"The request body is not accepted: {exc}.") from exc
        except json.JSONDecodeError as exc:
            raise ParseError(
                f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
            ) from exc
        except ValueError as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}.") from exc
