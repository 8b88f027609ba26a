"""Set-based inserts for the bounce batch path, and the pipeline that sends a group's statements together.

Django's bulk_create compiles one placeholder per field per row (500 rows of 17 fields: 8,500
parameters) and spends more time building the SQL than PostgreSQL spends running it. Here each
column travels as one array and `unnest` turns the arrays back into rows: a fixed statement
whatever the batch size.

Round trips, not statements, are what a listener's group waits for (on a loaded machine each
costs milliseconds of scheduling). So a group runs in psycopg's pipeline mode (`pipelined`):
statements are sent without waiting for each answer, and a read (`fetch_later`) is answered only
when its rows are needed, by then sharing its round trip with everything sent before it. Ids come
from the table's sequence ahead of the inserts (`draw_ids`), so the inserts need no answer at all
and a whole group's writes go in one round trip.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from django.db import connection, models


def pipelined() -> contextlib.AbstractContextManager[Any]:
    """psycopg's pipeline mode on the default connection (where libpq supports it). Enter it
    inside `transaction.atomic()`: switching autocommit in pipeline mode costs a round trip."""
    connection.ensure_connection()
    if not psycopg.Pipeline.is_supported():
        return contextlib.nullcontext()
    return connection.connection.pipeline()


def fetch_later(sql: str, params: Sequence[Any]) -> Callable[[], list[tuple]]:
    """Send a query now, read its rows when called (in a pipeline, the first read waits for
    every statement sent before it, in one round trip). Server-side binding: a query whose text
    does not change is prepared by psycopg after a few runs and no longer planned each time."""
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    cursor.execute(sql, params)

    def rows() -> list[tuple]:
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    return rows


def draw_ids(model: type[models.Model], count: int) -> Callable[[], list[int]]:
    """`count` new ids from `model`'s sequence, sent now, read when called. Ids drawn and not
    used are gaps, as after any rolled back insert."""
    if count <= 0:
        return list
    meta = model._meta
    rows = fetch_later(
        f"SELECT nextval((SELECT pg_get_serial_sequence('{meta.db_table}', '{meta.pk.column}'))) "  # noqa: S608
        "FROM generate_series(1, %s)",
        [count],
    )
    return lambda: [row[0] for row in rows()]


@functools.cache
def _statement(model: type[models.Model], fields: tuple[str, ...], ids: str) -> str:
    """The insert for `model`'s `fields` (names and types come from the model, never from input),
    built once per model, field list and `ids`: "draw" (from the
    sequence, returned in the rows' order), "given" (the first array) or "default" (not returned)."""
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    casts = [
        "jsonb[]" if isinstance(field, models.JSONField) else f"{field.db_type(connection)}[]"
        for field in columns
    ]
    quote = connection.ops.quote_name
    values = [f"v{index}" for index in range(len(columns))]
    arrays = ", ".join(f"%b::{cast}" for cast in casts)
    names = ", ".join(quote(c.column) for c in columns)
    table = quote(meta.db_table)
    if ids == "given":
        sql = (
            f"INSERT INTO {table} ({quote(pk.column)}, {names}) "  # noqa: S608
            f"SELECT * FROM unnest(%b::{pk.db_type(connection)}[], {arrays})"
        )
    elif ids == "default":
        sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608
    else:
        sql = (
            # the CTE is read twice, so PostgreSQL computes it (and nextval) once
            f"WITH r AS (SELECT nextval((SELECT pg_get_serial_sequence('{meta.db_table}', '{pk.column}'))) AS id, u.* "  # noqa: S608
            f"FROM unnest({arrays}) WITH ORDINALITY AS u({', '.join(values)}, n)), "
            f"i AS (INSERT INTO {table} ({quote(pk.column)}, {names}) "
            f"SELECT id, {', '.join(values)} FROM r) "
            "SELECT id FROM r ORDER BY n"
        )
    return sql


def _arrays(
    model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[list[Any]]:
    arrays: list[list[Any]] = []
    for index, name in enumerate(fields):
        field = model._meta.get_field(name)
        values = [row[index] for row in rows]
        if isinstance(field, models.JSONField):
            values = [None if v is None else json.dumps(v, cls=field.encoder) for v in values]
        arrays.append(values)
    return arrays


@contextlib.contextmanager
def _binary_cursor() -> Iterator[psycopg.Cursor]:
    connection.ensure_connection()
    # Server-side binding, binary: Django's default client-side cursor would quote every array
    # element (bytea above all) into the SQL text in Python.
    with psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """Insert `rows` (values in `fields` order) into `model`'s table; returns their new ids."""
    if not rows:
        return []
    sql = _statement(model, tuple(fields), "draw")
    with _binary_cursor() as cursor:
        cursor.execute(sql, _arrays(model, fields, rows), binary=True)
        return [row[0] for row in cursor.fetchall()]


def insert_rows_unanswered(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    ids: Sequence[int] | None = None,
) -> None:
    """Insert `rows` with the given `ids` (draw_ids) or the sequence's, waiting for no answer: in
    a pipeline it shares the next round trip (an error surfaces there, or at commit)."""
    if not rows:
        return
    sql = _statement(model, tuple(fields), "default" if ids is None else "given")
    arrays = _arrays(model, fields, rows)
    if ids is not None:
        if len(ids) != len(rows):
            raise ValueError("one id per row")
        arrays.insert(0, list(ids))
    with _binary_cursor() as cursor:
        cursor.execute(sql, arrays, binary=True)


def insert_objects(
    objects: Sequence[models.Model], fields: Sequence[str], ids: Sequence[int] | None = None
) -> None:
    """insert_rows for unsaved model instances; sets their pk. `fields` must include every column
    without a database default (auto_now_add values are the caller's to set). With `ids`
    (draw_ids), the insert waits for no answer (insert_rows_unanswered)."""
    if not objects:
        return
    model = type(objects[0])
    attnames = [model._meta.get_field(name).attname for name in fields]
    rows = [[getattr(obj, name) for name in attnames] for obj in objects]
    if ids is None:
        ids = insert_rows(model, fields, rows)
    else:
        ids = list(ids[: len(objects)])
        insert_rows_unanswered(model, fields, rows, ids)
    for obj, pk in zip(objects, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
