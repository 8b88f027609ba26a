"""A database of the benchmark's own, on the server the platform is configured for, dropped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


def base_database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from mailplatform.embedded import postgres_database_url

    return postgres_database_url()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def admin_connect(url: str):
    import psycopg

    parts = urlsplit(url)
    query = dict(item.split("=", 1) for item in parts.query.split("&") if "=" in item)
    return psycopg.connect(
        dbname="postgres",
        user=parts.username or "postgres",
        password=parts.password or None,
        host=query.get("host") or parts.hostname,
        port=parts.port or 5432,
        autocommit=True,
    )


@contextmanager
def _pointed_at(base: str, name: str) -> Iterator[str]:
    """DATABASE_URL (and the settings a benchmark runs with) on database `name` of `base`'s server."""
    os.environ["DATABASE_URL"] = with_database(base, name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailplatform.settings")
    # A benchmark runs on a developer's checkout like `make run` (a generated SECRET_KEY in var/);
    # the ones that measure production set DEBUG=false and a key themselves.
    os.environ.setdefault("DEBUG", "true")
    try:
        yield name
    finally:
        from django.db import connections

        connections.close_all()


@contextmanager
def own_database(label: str) -> Iterator[str]:
    """Create `posthorn_bench_<label>_<pid>`, point DATABASE_URL at it, drop it on the way out."""
    base = base_database_url()
    name = f"posthorn_bench_{label}_{os.getpid()}"
    with admin_connect(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with _pointed_at(base, name):
            yield name
    finally:
        with admin_connect(base) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def named_database(name: str) -> Iterator[str]:
    """Point DATABASE_URL at `name` on the same server, creating it if it is missing; never dropped
    (a database a benchmark grows once and measures again, such as ten million contacts)."""
    base = base_database_url()
    with admin_connect(base) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with _pointed_at(base, name):
        yield name
