import os
import subprocess
import sys

import pytest

from mailplatform.env import ConfigError, env_bool, env_int, env_url, parse_database_url
from tests.conftest import REPO_ROOT


def test_bool_rejects_garbage_and_names_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ConfigError, match="DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG")


def test_int_parses_and_enforces_minimum(monkeypatch):
    monkeypatch.setenv("WORKERS", "3")
    assert env_int("WORKERS", 1) == 3
    monkeypatch.setenv("WORKERS", "0")
    with pytest.raises(ConfigError, match="WORKERS=0 must be at least 1"):
        env_int("WORKERS", 1, minimum=1)


def test_url_requires_scheme_and_host(monkeypatch):
    monkeypatch.setenv("SITE_URL", "example.com")
    with pytest.raises(ConfigError, match="SITE_URL"):
        env_url("SITE_URL", "http://x")


def test_database_url_tcp_and_socket_forms():
    tcp = parse_database_url("DATABASE_URL", "postgresql://u:p%40ss@db.example:6543/mail")
    assert (tcp["HOST"], tcp["PORT"], tcp["NAME"], tcp["PASSWORD"]) == ("db.example", "6543", "mail", "p@ss")
    sock = parse_database_url("DATABASE_URL", "postgresql://postgres@/postgres?host=/var/run/pg")
    assert sock["HOST"] == "/var/run/pg"


@pytest.mark.parametrize(
    "value, message",
    [("mysql://x/y", "must start with postgresql://"), ("postgresql://host:5432/", "names no database")],
)
def test_database_url_errors_name_the_problem(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_database_url("DATABASE_URL", value)


def _start_with(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_up_stops_on_malformed_value_with_one_clear_line():
    result = _start_with({"DATABASE_URL": "mysql://nope/x", "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode != 0
    assert "DATABASE_URL='mysql://nope/x' must start with postgresql://" in result.stderr


def test_debug_off_refuses_to_start_without_secret_key():
    result = _start_with(
        {
            "DEBUG": "false",
            "SECRET_KEY": "",
            "DATABASE_URL": "postgresql://x@h/db",
            "REDIS_URL": "redis://h:1/0",
        }
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
