"""Segment rules -> one parameterised SQL condition over the contact table aliased `c`.

Rules are data from the dashboard, so every field name, operator and value is checked
against a fixed table here and only values ever reach the query, as parameters.

    {"match": "all"|"any",
     "groups": [{"match": "all"|"any",
                 "conditions": [{"field": "attr:score", "op": "gt", "value": "50"}]}]}
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from contacts.models import ContactStatus, CustomField, FieldType, SubscriptionStatus
from mailplatform.errors import Invalid


class SegmentError(Invalid):
    """The rules are malformed; the message says which condition and why.

    `group` and `condition` (0-based) locate the condition at fault, so a form can show the
    error on that row; None when the fault is the segment's or a group's as a whole.
    """

    group: int | None = None
    condition: int | None = None

    default_code = "invalid_rules"
    default_field = "rules"


TEXT_OPS = {
    "eq": "is",
    "neq": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
}
NUMBER_OPS = {
    "eq": "=",
    "neq": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
}
DATE_OPS = {
    "before": "before",
    "after": "after",
    "on": "on",
    "in_last_days": "in the last N days",
    "not_in_last_days": "not in the last N days",
    "is_empty": "never / empty",
    "is_not_empty": "ever / set",
}
BOOL_OPS = {"is_true": "is yes", "is_false": "is no", "is_empty": "is empty"}
CHOICE_OPS = {"eq": "is", "neq": "is not"}
LIST_OPS = {"in": "is subscribed to", "not_in": "is not subscribed to"}
# Engagement (contacts.models.Engagement): received / opened / clicked ...
ENGAGEMENT_OPS = {
    "mailing": "the mailing",
    "not_mailing": "not the mailing",
    "in_last_days": "any mailing in the last N days",
    "not_in_last_days": "no mailing in the last N days",
}
# ... and clicked a link whose URL contains a text (any mailing).
LINK_OPS = {"contains": "containing", "not_contains": "never one containing"}
# field -> (the engagement row's human column, its machine column, the contact's own column)
ENGAGEMENT_COLUMNS = {
    "received": ("sent_at", None, "c.last_sent_at"),
    "opened": ("opened_at", "machine_opened_at", "c.last_opened_at"),
    "clicked": ("clicked_at", "machine_clicked_at", "c.last_clicked_at"),
}
MAX_MAILINGS = 100
# What a contact did with one campaign's mail (its send group): the report's drill-downs saved as
# segments. The SQL is delivery's (lookups.MAILING_ACTIVITY_SQL): contacts does not read its tables.
MAILING_OPS = {
    "received": "was sent",
    "delivered": "had delivered",
    "opened": "opened (people)",
    "not_opened": "was sent, did not open",
    "clicked": "clicked (people)",
    "bounced": "bounced on",
    "unsubscribed": "unsubscribed from",
    "complained": "complained about",
}

# Built-in columns: field -> (SQL column, kind). Column names come from this table only.
BUILTINS: dict[str, tuple[str, str, str]] = {
    "email": ("c.email", "text", "Email"),
    "first_name": ("c.first_name", "text", "First name"),
    "last_name": ("c.last_name", "text", "Last name"),
    "status": ("c.status", "status", "Status"),
    "created_at": ("c.created_at", "datetime", "Added"),
    "last_sent_at": ("c.last_sent_at", "datetime", "Last sent"),
    "last_opened_at": ("c.last_opened_at", "datetime", "Last opened"),
    "last_clicked_at": ("c.last_clicked_at", "datetime", "Last clicked"),
    "bounce_count": ("c.bounce_count", "number", "Bounces"),
    "soft_bounce_count": ("c.soft_bounce_count", "number", "Soft bounces"),
    "list": ("", "list", "List membership"),
    "received": ("", "engagement", "Received"),
    "opened": ("", "engagement", "Opened"),
    "clicked": ("", "engagement", "Clicked"),
    "clicked_link": ("", "link", "Clicked a link"),
    "mailing": ("", "mailing", "Campaign mail"),
}
OPS_BY_KIND = {
    "text": TEXT_OPS,
    "number": NUMBER_OPS,
    "datetime": DATE_OPS,
    "date": DATE_OPS,
    "boolean": BOOL_OPS,
    "status": CHOICE_OPS,
    "list": LIST_OPS,
    "engagement": ENGAGEMENT_OPS,
    "link": LINK_OPS,
    "mailing": MAILING_OPS,
}
MAX_CONDITIONS = 50
ATTR_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class FieldInfo:
    key: str
    label: str
    kind: str


def available_fields() -> list[FieldInfo]:
    fields = [FieldInfo(key, label, kind) for key, (_, kind, label) in BUILTINS.items()]
    for field in CustomField.objects.order_by("name"):
        fields.append(FieldInfo(f"attr:{field.name}", field.label or field.name, field.type))
    return fields


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _number(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise SegmentError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite():
        raise SegmentError(f"{where}: {value!r} is not a finite number")
    # PostgreSQL's numeric (and jsonpath's) range ends long before Decimal's: refuse here, clearly.
    if abs(number.adjusted()) > 100 or len(number.as_tuple().digits) > 100:
        raise SegmentError(f"{where}: {str(value)[:20]!r}… has more than 100 digits")
    return number


def _days(value: Any, where: str) -> int:
    try:
        days = int(str(value).strip())
    except ValueError:
        raise SegmentError(f"{where}: {value!r} is not a whole number of days") from None
    if not 0 <= days <= 36500:
        raise SegmentError(f"{where}: days must be between 0 and 36500")
    return days


def _date(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise SegmentError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _text_condition(expr: str, op: str, value: Any, params: list, collate: str = "") -> str:
    """`collate` (' COLLATE "C"') lowers ASCII letters only: see _ascii_text_condition."""
    if op == "is_empty":
        return f"coalesce({expr}, '') = ''"
    if op == "is_not_empty":
        return f"coalesce({expr}, '') <> ''"
    text = str(value if value is not None else "")
    if op == "eq":
        params.append(text)
        return f"lower({expr}{collate}) = lower(%s)"
    if op == "neq":
        params.append(text)
        return f"lower(coalesce({expr}, ''){collate}) <> lower(%s)"
    pattern = {
        "contains": "%{}%",
        "not_contains": "%{}%",
        "starts_with": "{}%",
        "ends_with": "%{}",
    }[op].format(_like_escape(text.lower()))
    params.append(pattern)
    if op == "not_contains":
        return f"lower(coalesce({expr}, ''){collate}) NOT LIKE %s"
    return f"lower({expr}{collate}) LIKE %s"


# Printable ASCII: the database lowers it as the "C" collation does unless its locale is, say,
# Turkish (I -> ı). Compared once per query: the planner folds lower() of a constant.
_ASCII = "".join(map(chr, range(32, 127)))
_ASCII_LOWER = _ASCII.lower()


def _ascii_text_condition(column: str, op: str, value: Any, params: list) -> str:
    """The text test on a column, behind a prefilter that rejects most rows without lower().

    lower() in a UTF-8 database converts every value to wide characters and back (~0.2 µs a
    row); the "C" collation's lower() is a byte loop. On a value that is all ASCII the two agree
    whenever they agree on _ASCII, so there the cheap test decides; any other value, or a
    database where they disagree, passes the prefilter and meets the exact test, which stays
    as it was. The prefilter is true whenever the exact test is, so no match is lost.
    """
    params.extend([_ASCII, _ASCII_LOWER])
    if op == "starts_with" and str(value if value is not None else ""):
        first = _first_character(column, value, params)
        exact = _text_condition(column, op, value, params)
        return f"((lower(%s) <> %s OR {first}) AND {exact})"
    fast = _text_condition(column, op, value, params, collate=' COLLATE "C"')
    exact = _text_condition(column, op, value, params)
    return f"((lower(%s) <> %s OR ({fast}) OR octet_length({column}) <> char_length({column})) AND {exact})"


# The first character of a value is outside ASCII exactly when its first byte is (UTF-8), that is
# when the value sorts at or after U+0080 byte by byte.
_FIRST_NOT_ASCII = "\u0080"


def _first_character(column: str, value: Any, params: list) -> str:
    """For "starts with": its first character, either case, or a value whose first one is not ASCII.

    What lower() makes of a value's first character depends on that character alone, so a value
    starting with an ASCII letter can match only if it starts with the pattern's first character
    or that character's ASCII capital (where the database lowers ASCII as "C" does, tested
    beside this). A plain LIKE and a byte comparison cost less than even the cheap lower(), and
    unlike a test of the whole value (octet_length against char_length) they stop at its first bytes.
    """
    first = str(value).lower()[:1]
    if "a" <= first <= "z":
        # The same test in two comparisons, not three, on the usual capitalised name: in byte
        # order "A" < "a" < U+0080, so a value at or after the letter is in only if it starts with
        # it or is not ASCII at its first character, and one before it only if it starts with
        # its capital. (The three tests were a sixth of this count's CPU at a million contacts.)
        params.extend([first, chr(ord(first) + 1), _FIRST_NOT_ASCII, first.upper() + "%"])
        return (
            f'(CASE WHEN {column} COLLATE "C" >= %s '
            f'THEN {column} COLLATE "C" < %s OR {column} COLLATE "C" >= %s '
            f"ELSE {column} LIKE %s END)"
        )
    params.extend(
        [
            _like_escape(first) + "%",
            _like_escape(first.upper() if first.isascii() else first) + "%",
            _FIRST_NOT_ASCII,
        ]
    )
    return f'({column} LIKE %s OR {column} LIKE %s OR {column} COLLATE "C" >= %s)'


def _number_condition(expr: str, op: str, value: Any, params: list, where: str) -> str:
    if op == "is_empty":
        return f"{expr} IS NULL"
    if op == "is_not_empty":
        return f"{expr} IS NOT NULL"
    sql_op = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    params.append(_number(value, where))
    return f"{expr} {sql_op} %s"


def _attr_number_condition(name: str, op: str, value: Any, params: list, where: str) -> str:
    # One jsonpath test reads the attribute once, ~35% faster than extracting and casting it
    # over a million rows. Strict mode: a string or an array never compares as a number.
    # `name` matched ATTR_NAME and the number is a finite Decimal: the path is a parameter anyway.
    symbol = {"eq": "==", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    number = format(_number(value, where), "f")
    params.append(f'strict $."{name}" ? (@ {symbol} {number})')
    return "c.attributes @? %s::jsonpath"


def _date_condition(expr: str, op: str, value: Any, params: list, where: str, *, is_date: bool) -> str:
    if op == "is_empty":
        return f"{expr} IS NULL"
    if op == "is_not_empty":
        return f"{expr} IS NOT NULL"
    if op in ("in_last_days", "not_in_last_days"):
        params.append(_days(value, where))
        cutoff = "(current_date - %s)" if is_date else "(now() - make_interval(days => %s))"
        if op == "in_last_days":
            return f"{expr} >= {cutoff}"
        return f"({expr} IS NULL OR {expr} < {cutoff})"
    day = _date(value, where)
    if is_date:
        params.append(day)
        return f"{expr} {'<' if op == 'before' else '>' if op == 'after' else '='} %s"
    # Timestamps compare by calendar day in the database's time zone.
    if op == "before":
        params.append(day)
        return f"{expr} < %s::date"
    if op == "after":
        params.append(day + dt.timedelta(days=1))
        return f"{expr} >= %s::date"
    params.extend([day, day + dt.timedelta(days=1)])
    return f"({expr} >= %s::date AND {expr} < %s::date)"


def _attr_expr(name: str, kind: str) -> str:
    # `name` is a declared CustomField name checked against ATTR_NAME, so it is safe as a literal.
    key = f"'{name}'"
    # A value of the wrong JSON type reads as empty instead of failing the whole query.
    if kind == FieldType.NUMBER:
        return f"(CASE WHEN jsonb_typeof(c.attributes -> {key}) = 'number' THEN (c.attributes ->> {key})::numeric END)"
    if kind == FieldType.BOOLEAN:
        return f"(CASE WHEN jsonb_typeof(c.attributes -> {key}) = 'boolean' THEN (c.attributes ->> {key})::boolean END)"
    if kind == FieldType.DATE:
        return (
            f"(CASE WHEN (c.attributes ->> {key}) ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' "
            f"THEN (c.attributes ->> {key})::date END)"
        )
    return f"(c.attributes ->> {key})"


# What one test costs per contact row, cheapest first. Measured over a million contacts: a
# column comparison is nearly free, a lower() of a name ~0.2 µs, a test that reads the jsonb
# attributes ~0.4 µs, a list-membership probe ~2 µs.
COLUMN, TEXT, ATTRIBUTE, LIST = range(4)


@dataclass(frozen=True)
class _Part:
    sql: str
    params: list
    cost: int
    # Left to the planner as a qual of its own: it may answer it from an index (the lower(email)
    # and inactive-status indexes) or turn it into a join (list membership).
    planner: bool = False


def _condition(cond: Any, where: str, fields: dict[str, str]) -> _Part:
    """One checked condition, compiled with its own parameters so that it can be reordered."""
    params: list = []
    sql, cost, planner = _condition_sql(cond, where, fields, params)
    return _Part(sql, params, cost, planner)


def _condition_sql(cond: Any, where: str, fields: dict[str, str], params: list) -> tuple[str, int, bool]:
    if not isinstance(cond, dict):
        raise SegmentError(f"{where}: a condition must be an object")
    field = cond.get("field")
    op = cond.get("op")
    value = cond.get("value")
    if not isinstance(field, str) or not isinstance(op, str):
        raise SegmentError(f"{where}: a condition needs a field and an operator")
    if field.startswith("attr:"):
        name = field[5:]
        if name not in fields or not ATTR_NAME.fullmatch(name):
            raise SegmentError(f"{where}: there is no custom field {name!r}")
        kind = fields[name]
    elif field in BUILTINS:
        kind = BUILTINS[field][1]
    else:
        raise SegmentError(f"{where}: unknown field {field!r}")
    if op not in OPS_BY_KIND[kind]:
        raise SegmentError(f"{where}: operator {op!r} does not apply to field {field!r}")

    if kind == "list":
        try:
            list_id = int(value)
        except (TypeError, ValueError):
            raise SegmentError(f"{where}: choose a list") from None
        params.extend([list_id, SubscriptionStatus.CONFIRMED])
        exists = (
            "EXISTS (SELECT 1 FROM contacts_subscription s "
            "WHERE s.contact_id = c.id AND s.mailing_list_id = %s AND s.status = %s)"
        )
        return (exists if op == "in" else f"NOT {exists}"), LIST, True
    if kind == "engagement":
        return _engagement_condition(field, op, value, _machine(cond), params, where)
    if kind == "link":
        return _link_condition(op, value, _machine(cond), params, where), LIST, True
    if kind == "mailing":
        from mailplatform import lookups

        activity = lookups.ask(lookups.MAILING_ACTIVITY_SQL)
        if activity is None:
            raise SegmentError(f"{where}: campaign activity is not available")
        if not isinstance(value, str) or not re.fullmatch(r"[a-z_]{1,40}:[0-9]{1,18}", value):
            raise SegmentError(f"{where}: choose a campaign")
        sql, activity_params = activity(op, value)
        params.extend(activity_params)
        return sql, LIST, True
    if kind == "status":
        if value not in ContactStatus.values:
            raise SegmentError(f"{where}: {value!r} is not a contact status")
        params.append(value)
        return f"c.status {'=' if op == 'eq' else '<>'} %s", COLUMN, True

    if field.startswith("attr:"):
        return _attr_condition(field[5:], kind, op, value, params, where), ATTRIBUTE, False
    expr = BUILTINS[field][0]
    if kind == "text":
        if op in ("is_empty", "is_not_empty"):
            return _text_condition(expr, op, value, params), COLUMN, False
        if field == "email" and op in ("eq", "starts_with"):
            # The unique lower(email) index can answer these as they are.
            return _text_condition(expr, op, value, params), TEXT, True
        return _ascii_text_condition(expr, op, value, params), TEXT, False
    if kind == "number":
        return _number_condition(expr, op, value, params, where), COLUMN, False
    if kind in ("date", "datetime"):
        return _date_condition(expr, op, value, params, where, is_date=kind == "date"), COLUMN, False
    raise SegmentError(f"{where}: unsupported field kind {kind}")  # pragma: no cover


def _machine(cond: dict) -> bool:
    """Whether machine hits (scanners, privacy proxies) count too: off unless the rule says so."""
    machine = cond.get("machine", False)
    if isinstance(machine, str):
        return machine.strip().lower() in ("1", "true", "yes", "on")
    return machine is True


def _mailing_ids(value: Any, where: str) -> list[int]:
    """A mailing id, a list of them, or "12, 13": the rule matches on any of them."""
    items = value if isinstance(value, list) else str(value if value is not None else "").split(",")
    ids = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit() or len(text) > 18:
            raise SegmentError(f"{where}: {text[:20]!r} is not a mailing")
        ids.append(int(text))
    if not ids:
        raise SegmentError(f"{where}: choose a mailing")
    if len(ids) > MAX_MAILINGS:
        raise SegmentError(f"{where}: at most {MAX_MAILINGS} mailings")
    return sorted(set(ids))


_ENGAGED = "EXISTS (SELECT 1 FROM contacts_engagement e WHERE e.contact_id = c.id AND {})"


def _engagement_condition(
    field: str, op: str, value: Any, machine: bool, params: list, where: str
) -> tuple[str, int, bool]:
    """Received / opened / clicked a mailing, or any mailing in the last N days.

    A given mailing is a probe of its engagement rows (the (mailing, contact) key). "Any mailing
    in the last N days" with human hits only is the contact's own last_* column, which delivery
    moves on every human hit: no engagement row is read. Machine hits add the rows' machine
    columns. Received has no machine side: a message was handed over or not.
    """
    human, machine_column, contact_column = ENGAGEMENT_COLUMNS[field]
    machine_column = machine_column if machine else None
    if op in ("mailing", "not_mailing"):
        ids = _mailing_ids(value, where)
        # One mailing: `=` lets the planner read the index in contact order (a merge join).
        params.append(ids[0] if len(ids) == 1 else ids)
        test = "e.mailing_id = %s" if len(ids) == 1 else "e.mailing_id = ANY(%s)"
        if field != "received":
            # (Received needs no test: any row, even one an open made first, proves the mail arrived.)
            hit = f"e.{human} IS NOT NULL" + (f" OR e.{machine_column} IS NOT NULL" if machine_column else "")
            test += f" AND ({hit})"
        exists = _ENGAGED.format(test)
        return (exists if op == "mailing" else f"NOT {exists}"), LIST, True
    days = _days(value, where)
    params.append(days)
    recent = f"{contact_column} >= now() - make_interval(days => %s)"
    if machine_column:
        params.append(days)
        recent = (
            f"({recent} OR {_ENGAGED.format(f'e.{machine_column} >= now() - make_interval(days => %s)')})"
        )
    if op == "in_last_days":
        return recent, (LIST if machine_column else COLUMN), False
    return f"NOT coalesce({recent}, FALSE)", (LIST if machine_column else COLUMN), False


_CLICKED_LINK = (
    "EXISTS (SELECT 1 FROM contacts_engagementclick k WHERE k.link_id = ANY(ARRAY("
    "SELECT l.id FROM contacts_engagementlink l WHERE lower(l.url) LIKE %s)){machine} AND k.contact_id = c.id)"
)


def _link_condition(op: str, value: Any, machine: bool, params: list, where: str) -> str:
    """Clicked (or never clicked) a link whose URL contains the text, in any mailing; case-insensitive."""
    text = str(value if value is not None else "").strip()
    if not text:
        raise SegmentError(f"{where}: enter a text the link contains")
    params.append("%" + _like_escape(text.lower()) + "%")
    # The matching links, found once in the small link table (an InitPlan), then who clicked one
    # of them from the clicks' primary key alone.
    exists = _CLICKED_LINK.format(machine="" if machine else " AND NOT k.machine")
    return exists if op == "contains" else f"NOT {exists}"


def _attr_condition(name: str, kind: str, op: str, value: Any, params: list, where: str) -> str:
    if kind == "number" and op not in ("is_empty", "is_not_empty"):
        return _attr_number_condition(name, op, value, params, where)
    expr = _attr_expr(name, kind)
    if kind == "text":
        return _text_condition(expr, op, value, params)
    if kind == "number":
        return _number_condition(expr, op, value, params, where)
    if kind in ("date", "datetime"):
        return _date_condition(expr, op, value, params, where, is_date=kind == "date")
    if kind == "boolean":
        if op == "is_empty":
            return f"{expr} IS NULL"
        return f"{expr} IS {'TRUE' if op == 'is_true' else 'FALSE'}"
    raise SegmentError(f"{where}: unsupported field kind {kind}")  # pragma: no cover


def _joiner(match: Any, where: str) -> str:
    if match in (None, "all"):
        return " AND "
    if match == "any":
        return " OR "
    raise SegmentError(f"{where}: match must be 'all' or 'any'")


def _all_of(parts: list[_Part]) -> tuple[list[str], list]:
    """AND: the row tests in our cost order, as one `(... AND ...) IS TRUE` qual.

    The planner reorders separate quals by its own estimate, which prices a jsonpath test below a
    lower() (one operator against two) although it costs twice as much per row: over a million
    contacts a name test first, then the attributes of the few that pass, saves a third of the
    scan's work.
    It keeps the order inside one boolean expression; IS TRUE stops it from splitting the AND
    back into quals, keeps its selectivity estimate (the AND's), and is true exactly when the AND
    is, so the rows matched do not change. Index and join candidates stay quals of their own.
    """
    row_tests = [part for part in parts if not part.planner]
    sql: list[str] = []
    params: list = []
    for part in parts:
        if part.planner or len(row_tests) == 1:
            sql.append(part.sql)
            params.extend(part.params)
        elif part is row_tests[0]:
            sql.append("(" + " AND ".join(test.sql for test in row_tests) + ") IS TRUE")
            params.extend(param for test in row_tests for param in test.params)
    return sql, params


def _group(parts: list[_Part], joiner: str) -> tuple[str, list]:
    # Cheapest first: AND and OR stop at the first test that decides the row.
    ordered = sorted(parts, key=lambda part: part.cost)
    if joiner == " AND ":
        sql, params = _all_of(ordered)
    else:
        sql = [part.sql for part in ordered]
        params = [param for part in ordered for param in part.params]
    return "(" + joiner.join(sql) + ")", params


def compile_rules(rules: Any) -> tuple[str, list]:
    """(SQL boolean expression over alias c, params). Empty rules match every contact.

    Conditions are evaluated cheapest first (see _group); which contacts match never depends
    on that order.
    """
    if rules in (None, {}):
        return "TRUE", []
    if not isinstance(rules, dict):
        raise SegmentError("rules must be an object")
    groups = rules.get("groups", [])
    if not isinstance(groups, list):
        raise SegmentError("groups must be a list")
    fields = dict(CustomField.objects.values_list("name", "type"))
    params: list = []
    group_sql: list[str] = []
    total = 0
    for g_index, group in enumerate(groups, start=1):
        if not isinstance(group, dict):
            raise SegmentError(f"group {g_index}: must be an object")
        conditions = group.get("conditions", [])
        if not isinstance(conditions, list):
            raise SegmentError(f"group {g_index}: conditions must be a list")
        parts = []
        for c_index, cond in enumerate(conditions, start=1):
            total += 1
            if total > MAX_CONDITIONS:
                raise SegmentError(f"a segment may have at most {MAX_CONDITIONS} conditions")
            try:
                parts.append(_condition(cond, f"group {g_index}, condition {c_index}", fields))
            except SegmentError as exc:
                exc.group, exc.condition = g_index - 1, c_index - 1
                raise
        if parts:
            sql, group_params = _group(parts, _joiner(group.get("match"), f"group {g_index}"))
            group_sql.append(sql)
            params.extend(group_params)
    if not group_sql:
        return "TRUE", []
    return "(" + _joiner(rules.get("match"), "segment").join(group_sql) + ")", params
