"""manage.py create_api_key: the key on stdout once; user errors end with one line and status 1."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from mailplatform.models import ApiKey
from mailplatform.selectors import api_key_by_full_key

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def test_creates_a_working_key(make_user):
    make_user("developer", "ci-bot")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_key",
        "ci-bot",
        "--name",
        "deploys",
        "--scope",
        "webhooks:manage",
        "--scope",
        "events:read",
        stdout=out,
        stderr=err,
    )
    full_key = out.getvalue().strip()
    key = api_key_by_full_key(full_key)
    assert key is not None and key.scopes == ["events:read", "webhooks:manage"] and key.name == "deploys"
    assert full_key not in err.getvalue()


@pytest.mark.parametrize(
    "args,message",
    [
        (["nobody", "--name", "x", "--scope", "send"], "no user named"),
        (["dev", "--name", "x", "--scope", "relays:admin"], "may not grant"),
        (["dev", "--name", "x", "--scope", "contacts:write"], "may not grant"),  # above the default ceiling
        (["dev", "--name", "x"], "at least one scope"),
        (["dev", "--name", "x", "--scope", "send", "--expires-in-days", "0"], "expires-in-days"),
    ],
)
def test_user_errors(make_user, args, message):
    make_user("developer", "dev")
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.exists()


def test_error_is_one_line_and_status_1():
    from django.conf import settings

    from tests.conftest import database_url_for_tests

    env = {**os.environ, "DATABASE_URL": database_url_for_tests(), "REDIS_URL": settings.REDIS_URL}
    result = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "nobody-at-all", "--name", "x", "--scope", "send"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["CommandError: no user named 'nobody-at-all'"]
