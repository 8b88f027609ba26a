"""Set-based inserts for the bounce batch path.

Django's bulk_create compiles one placeholder per field per row (500 rows of 17 fields: 8,500
parameters) and spends more time building the SQL than PostgreSQL spends running it. Here each
column travels as one array and `unnest` turns the arrays back into rows: a fixed statement
whatever the batch size. Ids are drawn from the table's sequence in the same statement and
returned in the rows' order (WITH ORDINALITY), so every row's id is known without relying on the
order of RETURNING, in one round trip (the listener stores a group per transaction: each round
trip is latency its senders wait for).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection, models


@functools.cache
def _statement(model: type[models.Model], fields: tuple[str, ...]) -> tuple[str, tuple[bool, ...]]:
    """The insert for `model`'s `fields` (names and types come from the model, never from input),
    and which columns are JSON; built once per model and field list."""
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    is_json = tuple(isinstance(field, models.JSONField) for field in columns)
    casts = [
        "jsonb[]" if json_field else f"{field.db_type(connection)}[]"
        for field, json_field in zip(columns, is_json, strict=True)
    ]
    quote = connection.ops.quote_name
    values = [f"v{index}" for index in range(len(columns))]
    sql = (
        # the CTE is read twice, so PostgreSQL computes it (and nextval) once
        f"WITH r AS (SELECT nextval((SELECT pg_get_serial_sequence('{meta.db_table}', '{pk.column}'))) AS id, u.* "  # noqa: S608
        f"FROM unnest({', '.join(f'%b::{cast}' for cast in casts)}) WITH ORDINALITY AS u({', '.join(values)}, n)), "
        f"i AS (INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c.column) for c in [pk, *columns])}) "
        f"SELECT id, {', '.join(values)} FROM r) "
        "SELECT id FROM r ORDER BY n"
    )
    return sql, is_json


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """Insert `rows` (values in `fields` order) into `model`'s table; returns their new ids."""
    if not rows:
        return []
    sql, is_json = _statement(model, tuple(fields))
    encoders = [
        model._meta.get_field(name).encoder if json_field else None
        for name, json_field in zip(fields, is_json, strict=True)
    ]
    arrays: list[list[Any]] = []
    for index, json_field in enumerate(is_json):
        values = [row[index] for row in rows]
        if json_field:
            values = [None if v is None else json.dumps(v, cls=encoders[index]) for v in values]
        arrays.append(values)
    connection.ensure_connection()
    # Server-side binding, binary: Django's default client-side cursor would quote every array
    # element (bytea above all) into the SQL text in Python.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, arrays, binary=True)
        return [row[0] for row in cursor.fetchall()]


def insert_objects(objects: Sequence[models.Model], fields: Sequence[str]) -> None:
    """insert_rows for unsaved model instances; sets their pk. `fields` must include every column
    without a database default (auto_now_add values are the caller's to set)."""
    if not objects:
        return
    model = type(objects[0])
    attnames = [model._meta.get_field(name).attname for name in fields]
    ids = insert_rows(model, fields, [[getattr(obj, name) for name in attnames] for obj in objects])
    for obj, pk in zip(objects, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
