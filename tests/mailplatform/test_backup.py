"""Backups: a round trip into an empty scratch database, on which the platform then runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command

from mailplatform import backup as backups
from tests.conftest import REPO_ROOT, database_url_for_tests

pytestmark = pytest.mark.django_db(transaction=True)

CHECK_PLATFORM = """
import django, sys
django.setup()
from django.core.management import call_command
from django.test import Client
from contacts.models import Contact
from mailplatform.models import User
call_command("migrate", verbosity=0)
assert Contact.objects.filter(email="restored@example.org").exists(), "the contact is missing"
client = Client()
assert client.login(username="boss", password="correct horse battery"), "the admin cannot log in"
assert client.get("/contacts/").status_code == 200
ready = client.get("/readyz")
assert ready.status_code == 200, ready.content
print("platform runs:", Contact.objects.count(), "contacts,", User.objects.count(), "users")
"""


def _scratch_url(name: str) -> str:
    url = database_url_for_tests()
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


def _admin_sql(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def scratch_database():
    name = f"posthorn_restore_{os.getpid()}_{time.monotonic_ns() % 10**8}"
    admin = _scratch_url("postgres")
    _admin_sql(admin, f'CREATE DATABASE "{name}"')
    try:
        yield _scratch_url(name)
    finally:
        _admin_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(code_or_args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "mailplatform.settings_test", **env},
    )  # fmt: skip


def test_a_backup_restores_into_an_empty_database_and_the_platform_runs_on_it(
    tmp_path, settings, make_user, scratch_database
):
    from contacts.models import Contact

    settings.MEDIA_ROOT = tmp_path / "media"
    (settings.MEDIA_ROOT / "images" / "ab").mkdir(parents=True)
    (settings.MEDIA_ROOT / "images" / "ab" / "logo.png").write_bytes(b"\x89PNG not really" * 100)
    make_user("admin", "boss")
    Contact.objects.create(email="restored@example.org", first_name="Restored")

    made = backups.backup(tmp_path / "backups")
    assert made.media_files == 1 and made.path.name.startswith("posthorn-backup-")
    with tarfile.open(made.path) as tar:
        manifest = backups.read_manifest(tar)
    assert (
        "contacts" in manifest["migrations"]
        and manifest["pg_dump_major"] >= manifest["postgresql_server_major"]
    )

    env = {
        "DATABASE_URL": scratch_database,
        "MEDIA_ROOT": str(tmp_path / "restored-media"),
        "ALLOWED_HOSTS": "testserver",
    }
    restored = _run(["manage.py", "restore", str(made.path)], env)
    assert restored.returncode == 0, restored.stderr
    assert "now run: python manage.py migrate" in restored.stdout
    runs = _run(["-c", CHECK_PLATFORM], env)
    assert runs.returncode == 0, runs.stderr
    print("\n" + runs.stdout.strip())
    assert (
        tmp_path / "restored-media" / "images" / "ab" / "logo.png"
    ).read_bytes() == b"\x89PNG not really" * 100

    again = _run(["manage.py", "restore", str(made.path)], env)
    assert again.returncode != 0 and "restore only into an empty database" in again.stderr


def _rewrite(archive: Path, target: Path, change) -> Path:
    """A copy of the archive with one member changed by `change(name, data) -> data`."""
    with tarfile.open(archive) as source, tarfile.open(target, "w") as sink:
        for member in source.getmembers():
            data = change(member.name, source.extractfile(member).read())
            member.size = len(data)
            sink.addfile(member, io.BytesIO(data))
    return target


def test_restore_refuses_a_damaged_backup_or_one_from_a_newer_version(tmp_path, settings, scratch_database):
    settings.MEDIA_ROOT = tmp_path / "media"
    made = backups.backup(tmp_path / "backups")
    # Each restore below is refused before the (empty) scratch database is touched.

    damaged = _rewrite(made.path, tmp_path / "damaged.tar",
                       lambda name, data: data[:-10] + b"0123456789" if name == "database.dump" else data)  # fmt: skip
    with pytest.raises(CommandError, match="does not match its checksum"):
        call_command("restore", str(damaged))

    def newer(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["migrations"]["contacts"].append("9999_from_the_future")
        return json.dumps(manifest).encode()

    with pytest.raises(CommandError, match="made by a newer Posthorn"):
        call_command("restore", str(_rewrite(made.path, tmp_path / "newer.tar", newer)))
    with pytest.raises(CommandError, match="not a Posthorn backup"):
        (tmp_path / "junk.tar").write_bytes(b"")
        with tarfile.open(tmp_path / "junk.tar", "w"):
            pass
        call_command("restore", str(tmp_path / "junk.tar"))
