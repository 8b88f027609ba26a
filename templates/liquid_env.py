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

from liquid import BoundTemplate, Environment, RenderContext
from liquid.builtin.expressions.primitive import IntegerLiteral, RangeLiteral
from liquid.exceptions import ResourceLimitError
from liquid.filter import with_context
from liquid.stringify import to_liquid_string
from liquid.undefined import Undefined

# Limits a marketer's template cannot exceed (a runaway loop, a gigabyte of output, deep nesting).
LOOP_ITERATION_LIMIT = 10_000
OUTPUT_STREAM_LIMIT = 2_000_000  # characters per rendered part
CONTEXT_DEPTH_LIMIT = 20
LOCAL_NAMESPACE_LIMIT = 1_000_000  # bytes held by {% assign %} / {% capture %}
BLOCK_NESTING_LIMIT = 20
DATA_DEPTH_LIMIT = 8  # nesting of the data given to a template
SOURCE_LIMIT = 512 * 1024  # characters in one part's source
# Filters and ranges: checked BEFORE anything is built, so no filter call can allocate more than
# its bounded inputs (a range of a hundred million, a join of it, a split into single characters).
COLLECTION_LIMIT = 10_000  # items in any range, array or split result
STRING_LIMIT = OUTPUT_STREAM_LIMIT  # characters in any string a filter takes or builds
NUMBER_BITS_LIMIT = 1024  # an integer squared in a loop would otherwise grow without end
# Work done by filters in one render (items and characters they take in): 10,000 loop iterations
# of a filter over a 10,000-item array would otherwise run for minutes within every other limit.
FILTER_ITEMS_BUDGET = 100_000
FILTER_CHARS_BUDGET = 20_000_000

REMOVED_TAGS = ("include", "render")


class CollectionLimitError(ResourceLimitError):
    """A range, filter input or filter result would exceed a size limit (raised before it is built)."""

    def __init__(self, message: str, token: Any = None):
        super().__init__(message, token=token)


def _too_many(what: str, count: int) -> CollectionLimitError:
    return CollectionLimitError(f"{what} would hold {count:,} items (the limit is {COLLECTION_LIMIT:,})")


def _too_long(what: str, length: int) -> CollectionLimitError:
    return CollectionLimitError(f"{what} would build {length:,} characters (the limit is {STRING_LIMIT:,})")


def _count_items(value: list | tuple, stop: int) -> int:
    """Items in `value`, nested arrays flattened as Liquid's array filters do; stops past `stop`."""
    count = 0
    pending: list[Any] = [value]
    while pending and count <= stop:
        for item in pending.pop():
            count += 1
            if isinstance(item, list | tuple):
                pending.append(item)
            if count > stop:
                break
    return count


def _text_length(value: Any, stop: int) -> int:
    """The length of `value` as Liquid writes it, without building a long string; stops past `stop`."""
    if isinstance(value, str):
        return len(value)
    if value is None or isinstance(value, Undefined):
        return 0
    if isinstance(value, list | tuple):
        total = 0
        for item in value:
            total += _text_length(item, stop)
            if total > stop:
                break
        return total
    return len(to_liquid_string(value, False))


def _check_value(name: str, value: Any) -> int:
    """Refuse an over-large filter input; returns its weight (items or characters) for the budget."""
    if isinstance(value, str):
        if len(value) > STRING_LIMIT:
            raise _too_long(f"'{name}' was given a string that", len(value))
        return len(value)
    if isinstance(value, range):
        if len(value) > COLLECTION_LIMIT:
            raise _too_many(f"'{name}' was given a range that", len(value))
        return len(value)
    if isinstance(value, list | tuple):
        count = _count_items(value, COLLECTION_LIMIT)
        if count > COLLECTION_LIMIT:
            raise _too_many(f"'{name}' was given an array that", count)
        return count
    if isinstance(value, dict):
        if len(value) > COLLECTION_LIMIT:
            raise _too_many(f"'{name}' was given a hash that", len(value))
        return len(value)
    if isinstance(value, int) and value.bit_length() > NUMBER_BITS_LIMIT:
        raise CollectionLimitError(f"'{name}' was given a number larger than 2**{NUMBER_BITS_LIMIT}")
    return 1


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _as_text(value: Any) -> str:
    return "" if value is None or isinstance(value, Undefined) else to_liquid_string(value, False)


def _predict_join(left: Any, args: tuple, kwargs: dict) -> None:
    if not isinstance(left, list | tuple | range):
        return
    separator = _as_text(_arg(args, kwargs, 0, "separator", " "))
    length = len(separator) * max(len(left) - 1, 0)
    if length <= STRING_LIMIT:
        length += _text_length(list(left) if isinstance(left, range) else left, STRING_LIMIT)
    if length > STRING_LIMIT:
        raise _too_long("'join'", length)


def _predict_concatenation(name: str) -> Any:
    def predict(left: Any, args: tuple, kwargs: dict) -> None:
        other = _arg(args, kwargs, 0, "arg", "")
        length = len(_as_text(left)) + _text_length(other, STRING_LIMIT)
        if length > STRING_LIMIT:
            raise _too_long(f"'{name}'", length)

    return predict


def _predict_replace(name: str, every: bool) -> Any:
    def predict(left: Any, args: tuple, kwargs: dict) -> None:
        text = _as_text(left)
        old = _as_text(_arg(args, kwargs, 0, "seq", ""))
        new = _as_text(_arg(args, kwargs, 1, "sub", ""))
        if len(new) <= len(old):
            return
        found = (text.count(old) if old else len(text) + 1) if every else 1
        length = len(text) + found * (len(new) - len(old))
        if length > STRING_LIMIT:
            raise _too_long(f"'{name}'", length)

    return predict


def _predict_split(left: Any, args: tuple, kwargs: dict) -> None:
    text = _as_text(left)
    separator = _arg(args, kwargs, 0, "sep", None)
    separator = "" if separator is None or isinstance(separator, Undefined) else _as_text(separator)
    count = text.count(separator) + 1 if separator else len(text)
    if count > COLLECTION_LIMIT:
        raise _too_many("'split'", count)


def _predict_concat(left: Any, args: tuple, kwargs: dict) -> None:
    other = _arg(args, kwargs, 0, "second_array", [])
    count = sum(
        _count_items(v, COLLECTION_LIMIT) if isinstance(v, list | tuple) else 1 for v in (left, other)
    )
    if count > COLLECTION_LIMIT:
        raise _too_many("'concat'", count)


# Filters whose result can be much larger than any one input: predicted before they run.
_PREDICTIONS = {
    "join": _predict_join,
    "append": _predict_concatenation("append"),
    "prepend": _predict_concatenation("prepend"),
    "replace": _predict_replace("replace", every=True),
    "replace_first": _predict_replace("replace_first", every=False),
    "replace_last": _predict_replace("replace_last", every=False),
    "split": _predict_split,
    "concat": _predict_concat,
}


def _spend(context: Any, items: int, chars: int) -> None:
    """Charge one filter call's inputs to the render's budget (kept in the render's tag namespace)."""
    spent = context.tag_namespace.setdefault("posthorn_filter_work", [0, 0])
    spent[0] += items
    spent[1] += chars
    if spent[0] > FILTER_ITEMS_BUDGET or spent[1] > FILTER_CHARS_BUDGET:
        raise CollectionLimitError(
            f"filters did too much work in one render (more than {FILTER_ITEMS_BUDGET:,} items or "
            f"{FILTER_CHARS_BUDGET:,} characters)"
        )


def _bounded(name: str, func: Any) -> Any:
    """Wrap a filter: inputs checked, its result predicted where it can grow, the render charged."""
    wants_context = getattr(func, "with_context", False)
    predict = _PREDICTIONS.get(name)

    @with_context
    def bounded(left: Any, *args: Any, context: Any, **kwargs: Any) -> Any:
        items = chars = 0
        for value in (left, *args, *kwargs.values()):
            weight = _check_value(name, value)
            if isinstance(value, str):
                chars += weight
            else:
                items += weight
        _spend(context, items, chars)
        if predict is not None:
            predict(left, args, kwargs)
        if wants_context:
            kwargs["context"] = context
        result = func(left, *args, **kwargs)
        _check_value(name, result)  # the bound for filters that grow by a fixed factor (escape)
        return result

    for attribute in ("with_environment",):
        if getattr(func, attribute, False):
            setattr(bounded, attribute, True)
    return bounded


def _uniq(sequence: Any, key: object = None) -> list[object]:
    """Liquid's `uniq` in linear time (the stock one compares every pair: seconds at 10,000 items)."""
    if not isinstance(sequence, list | tuple | range):
        sequence = [sequence]
    seen: set[Any] = set()
    result = []
    for item in sequence:
        probe = item.get(key) if key is not None and isinstance(item, dict) else item
        marker = _hashable(probe)
        if marker not in seen:
            seen.add(marker)
            result.append(item)
    return result


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", tuple((k, _hashable(v)) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))))
    if isinstance(value, list | tuple):
        return ("list", tuple(_hashable(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


def _bounded_range_evaluate(self: RangeLiteral, context: Any) -> range:
    value = _stock_range_evaluate(self, context)
    if isinstance(context.env, LimitedEnvironment) and len(value) > COLLECTION_LIMIT:
        raise _too_many(f"the range ({value.start}..{value.stop - 1})", len(value))
    return value


# Ranges are built by the parser's own RangeLiteral (no environment hook exists); the check applies
# to our environments only (see _bounded_range_evaluate).
_stock_range_evaluate = RangeLiteral.evaluate
RangeLiteral.evaluate = _bounded_range_evaluate  # type: ignore[method-assign]


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
        self.filters["uniq"] = _uniq
        for name, func in list(self.filters.items()):
            self.filters[name] = _bounded(name, func)


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


def check_static_limits(template: BoundTemplate) -> None:
    """Refuse, at save time, a range written with literal bounds that breaks COLLECTION_LIMIT.

    Ranges over recipient data can only be checked when rendering (`_bounded_range_evaluate`).
    """
    static_context = RenderContext(template)
    nodes = list(template.nodes)
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children(static_context, include_partials=False))
        expressions = list(node.expressions())
        while expressions:
            expression = expressions.pop()
            expressions.extend(expression.children())
            if (
                isinstance(expression, RangeLiteral)
                and isinstance(expression.start, IntegerLiteral)
                and isinstance(expression.stop, IntegerLiteral)
            ):
                count = expression.stop.value - expression.start.value + 1
                if count > COLLECTION_LIMIT:
                    error = _too_many(f"the range {expression}", count)
                    error.token = expression.token
                    raise error
