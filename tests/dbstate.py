"""Whether a request changed anything in the database: every table's rows, one digest per table.

For refused requests (issue #12): a test that checks only the status code of a refused POST passes
when the view acts first and refuses after; `changed_tables(before)` must be empty as well.
"""

from __future__ import annotations

from django.db import connection

# Tables a request may touch without changing anything the platform holds: the visitor's session.
UNWATCHED = frozenset({"django_session"})


def db_fingerprint() -> dict[str, str]:
    """Every table's rows, as one digest each."""
    digests = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            if table in UNWATCHED:
                continue
            quoted = connection.ops.quote_name(table)
            cursor.execute(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {quoted} t"
            )  # noqa: S608
            digests[table] = cursor.fetchone()[0]
    return digests


def changed_tables(before: dict[str, str]) -> list[str]:
    """The tables whose rows differ from `before` (a db_fingerprint())."""
    after = db_fingerprint()
    return sorted(table for table in set(before) | set(after) if before.get(table) != after.get(table))
