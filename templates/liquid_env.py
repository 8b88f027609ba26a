"""The Liquid environments templates render in: plain data only, every resource limited.

python-liquid resolves paths with `obj[key]` only (never getattr), so a template can reach
nothing but the mappings and lists it is given; `plain_data` makes sure that is all it gets.
No loader is configured and the `include`/`render` tags are removed, so no template can name
a file. Settings, models and Python objects never enter a render context.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

from liquid import Environment

# Limits a marketer's template cannot exceed (a runaway loop, a gigabyte of output, deep nesting).
LOOP_ITERATION_LIMIT = 10_000
OUTPUT_STREAM_LIMIT = 2_000_000  # characters per rendered part
CONTEXT_DEPTH_LIMIT = 20
LOCAL_NAMESPACE_LIMIT = 1_000_000  # bytes held by {% assign %} / {% capture %}
BLOCK_NESTING_LIMIT = 20
DATA_DEPTH_LIMIT = 8  # nesting of the data given to a template
SOURCE_LIMIT = 512 * 1024  # characters in one part's source

REMOVED_TAGS = ("include", "render")


class LimitedEnvironment(Environment):
    loop_iteration_limit = LOOP_ITERATION_LIMIT
    output_stream_limit = OUTPUT_STREAM_LIMIT
    context_depth_limit = CONTEXT_DEPTH_LIMIT
    local_namespace_limit = LOCAL_NAMESPACE_LIMIT
    block_nesting_limit = BLOCK_NESTING_LIMIT

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=False)
        for name in REMOVED_TAGS:
            self.tags.pop(name, None)


# One environment escapes values for HTML; the other (subject, text part) writes them raw.
HTML_ENV = LimitedEnvironment(autoescape=True)
TEXT_ENV = LimitedEnvironment(autoescape=False)


def plain_data(value: Any, depth: int = 0) -> Any:
    """Copy `value` into dicts, lists, strings and numbers; anything else becomes its string."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if depth >= DATA_DEPTH_LIMIT:
        return None
    if isinstance(value, Mapping):
        return {str(k): plain_data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes | bytearray):
        return [plain_data(v, depth + 1) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)
