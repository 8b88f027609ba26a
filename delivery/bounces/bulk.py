"""Set-based inserts for the bounce batch path.

Django's bulk_create compiles one placeholder per field per row (500 rows of 17 fields: 8,500
parameters) and spends more time building the SQL than PostgreSQL spends running it. Here each
column travels as one array and `unnest` turns the arrays back into rows: a fixed statement
whatever the batch size. Ids are drawn from the table's sequence first, so every row's id is
known without relying on the order of RETURNING.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection, models


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """Insert `rows` (values in `fields` order) into `model`'s table; returns their new ids."""
    if not rows:
        return []
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    connection.ensure_connection()
    # Server-side binding, binary: Django's default client-side cursor would quote every array
    # element (bytea above all) into the SQL text in Python.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(rows)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        arrays: list[list[Any]] = [ids]
        casts = [f"{pk.db_type(connection)}[]"]
        for index, field in enumerate(columns):
            values = [row[index] for row in rows]
            if isinstance(field, models.JSONField):
                arrays.append([None if v is None else json.dumps(v, cls=field.encoder) for v in values])
                casts.append("jsonb[]")
            else:
                arrays.append(values)
                casts.append(f"{field.db_type(connection)}[]")
        names = ", ".join(connection.ops.quote_name(c.column) for c in [pk, *columns])
        unnest = ", ".join(f"%s::{cast}" for cast in casts)
        cursor.execute(
            # Names and types come from the model, never from input.
            f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({names}) SELECT * FROM unnest({unnest})",  # noqa: S608
            arrays,
            binary=True,
        )
    return ids


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
