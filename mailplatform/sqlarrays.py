"""Arrays as one text parameter (`%s::bigint[]`, `%s::text[]`) for queries that pass thousands of values.

Django's psycopg backend binds parameters client-side, and psycopg quotes a Python list element by
element (a regular-expression test and an escape each): for a batch of thousands of ids that cost
more than the query itself. A PostgreSQL array literal built here is one string to quote.
"""

from __future__ import annotations

from collections.abc import Iterable


def int_array(values: Iterable[int]) -> str:
    """`{1,2,3}`: every value goes through int(), so nothing but digits and signs reach the SQL."""
    return "{" + ",".join([str(int(value)) for value in values]) + "}"


def text_array(values: Iterable[str]) -> str:
    """`{"a","b"}`: each element double-quoted, its backslashes and double quotes escaped, as the
    array input syntax asks (so commas, braces, spaces and NULL-looking words stay plain text)."""
    return (
        "{"
        + ",".join(['"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values])
        + "}"
    )
