"""`manage.py dev` supervises web, worker, beat and capture relay, and stops them all on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from django.conf import settings

from tests.conftest import REPO_ROOT, database_url_for_tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dev_stack_starts_everything_and_stops_everything(transactional_db, tmp_path):
    from mailplatform.paths import RUN_DIR

    web_port, capture_port, bounce_port = _free_port(), _free_port(), _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "CAPTURE_SMTP_PORT": str(capture_port),
        "BOUNCE_SMTP_PORT": str(bounce_port),
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings_test",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / "dev.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "dev", "--addr", f"127.0.0.1:{web_port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and health is None:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=5) as response:
                    health = json.load(response)
            except urllib.error.HTTPError as error:  # 503 until the worker answers
                if json.load(error).get("worker") == "up":
                    health = {}
            except OSError:
                pass
        assert process.poll() is None, (tmp_path / "dev.log").read_text()
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 4
        # The capture relay is not in the health check: it may still be starting.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", capture_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", capture_port), timeout=5) as sock:
            assert sock.recv(100).startswith(b"220")
        deadline = time.monotonic() + 30
        while True:  # the bounce listener is a child too
            try:
                with socket.create_connection(("127.0.0.1", bounce_port), timeout=5) as sock:
                    assert b"bounce listener" in sock.recv(200)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

        second = subprocess.run(
            [sys.executable, "manage.py", "dev"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "is in use by another `make run`" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        process.wait(30)
    output = (tmp_path / "dev.log").read_text()
    assert "username: admin" in output
    assert "web    |" in output or "web     |" in output
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert not (RUN_DIR / "dev.lock").exists() or process.returncode == 0
