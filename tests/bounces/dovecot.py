"""A real Dovecot (Debian's /usr/sbin/dovecot) on loopback for the mailbox poller's tests."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


@dataclass
class Dovecot:
    imap_port: int
    pop3_port: int
    username: str
    password: str

    def append(self, raw: bytes) -> None:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port)
        client.login(self.username, self.password)
        client.append("INBOX", None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        client.logout()

    def count(self) -> int:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port)
        client.login(self.username, self.password)
        _status, data = client.select("INBOX")
        client.logout()
        return int(data[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _users() -> tuple[str, str, str, str, str]:
    """(internal user, internal group, login user, mail user, mail group)."""
    if os.geteuid() == 0:
        return "dovecot", "dovecot", "dovenull", "nobody", "nogroup"
    me = pwd.getpwuid(os.geteuid()).pw_name
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    return me, group, me, me, group


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if not Path(DOVECOT).exists():
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)")
    # A short path: Dovecot's unix sockets live under base_dir.
    root = Path(tempfile.mkdtemp(prefix="dv", dir="/tmp"))
    root.chmod(0o755)
    internal, internal_group, login, mail_user, mail_group = _users()
    server = Dovecot(_free_port(), _free_port(), "bounces", "correct-horse-battery")
    (root / "passwd").write_text(f"{server.username}:{{PLAIN}}{server.password}\n")
    for name in ("run", "state", "home"):
        (root / name).mkdir()
    if os.geteuid() == 0:
        shutil.chown(root / "home", mail_user, mail_group)
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={root}/home/%u
}}
mail_location = maildir:{root}/home/%u/Maildir
first_valid_uid = 0
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {server.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {server.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    config = str(root / "dovecot.conf")
    # Output to a file, not a pipe: the daemon's children keep a pipe open and run() would wait.
    with open(root / "start.log", "w+") as start_log:
        started = subprocess.run([DOVECOT, "-c", config], stdout=start_log, stderr=subprocess.STDOUT)
        start_log.seek(0)
        if started.returncode != 0:
            message = start_log.read().strip()
            shutil.rmtree(root, ignore_errors=True)
            pytest.fail(f"dovecot did not start: {message}")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                imaplib.IMAP4("127.0.0.1", server.imap_port).logout()
                break
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        subprocess.run([DOVECOT, "-c", config, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
