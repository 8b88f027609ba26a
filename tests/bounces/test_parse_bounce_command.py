"""`manage.py parse_bounce FILE ...`: JSON lines, no database needed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SAMPLES = Path(__file__).parent / "samples"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def _run(*files: str) -> subprocess.CompletedProcess[str]:
    port = _closed_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/nowhere",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "parse_bounce", *files],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prints_one_json_object_per_recipient_with_the_database_down() -> None:
    files = [str(SAMPLES / "dsn-two-recipients-mixed.eml"), str(SAMPLES / "not-a-bounce.eml")]
    result = _run(*files)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["file"], line["recipient"], line["kind"]) for line in lines] == [
        (files[0], "full@example.com", "soft"),
        (files[0], "blocked@example.com", "block"),
        (files[0], "later@example.com", "delayed"),
        (files[1], "", "none"),
    ]
    assert set(lines[0]) == {"file", "recipient", "kind", "status", "reason", "diagnostic"}
    assert lines[0]["status"] == "5.2.2" and lines[0]["reason"] == "mailboxfull"
    assert "over quota" in lines[0]["diagnostic"]


def test_an_unreadable_file_is_reported_the_others_go_on_and_the_exit_status_is_1(tmp_path) -> None:
    good = str(SAMPLES / "exim-text.eml")
    result = _run(str(tmp_path), good)  # a directory cannot be read as a message
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["kind"] == "error" and lines[0]["file"] == str(tmp_path)
    assert lines[1]["recipient"] == "gone@example.com" and lines[1]["kind"] == "hard"
    assert result.stderr.strip().count("\n") == 0 and "could not read 1 file" in result.stderr
    assert "Traceback" not in result.stderr
