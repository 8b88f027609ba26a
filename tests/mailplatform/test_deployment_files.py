"""docker-compose.yml cannot run here (no Docker engine): check that what it runs exists."""

import importlib.util
import os
import re
import secrets
import shlex
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT


def _compose():
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services():
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(_compose()["services"])


def test_every_service_command_names_something_that_exists():
    from django.core.management import get_commands

    for name, service in _compose()["services"].items():
        command = service.get("command")
        if not command or "image" in service:
            continue  # third-party images run their own binaries
        argv = command if isinstance(command, list) else shlex.split(command)
        if argv[0] == "gunicorn":
            module = argv[-1].split(":")[0]
            assert importlib.util.find_spec(module), f"{name}: {module} does not exist"
        elif argv[:2] == ["celery", "-A"]:
            assert importlib.util.find_spec(argv[2]), f"{name}: celery app {argv[2]} does not exist"
            assert argv[3] in {"worker", "beat"}
        elif argv[:2] == ["python", "manage.py"]:
            assert argv[2] in get_commands(), f"{name}: no management command {argv[2]}"
        else:
            raise AssertionError(f"{name}: unrecognised command {argv}")


def test_app_services_are_configured_by_environment():
    services = _compose()["services"]
    for name in ("web", "worker", "beat"):
        env = services[name].get("environment", {})
        keys = set(env) if isinstance(env, dict) else {item.split("=")[0] for item in env}
        assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= keys, name


# --- issue #12: compose passes every secret the settings read, nothing else; check --deploy is clean ---

# Names settings still read for older deployments; a new compose file uses the current name.
LEGACY_NAMES = {"DELIVERY_ENCRYPTION_KEYS"}
SECRET_NAME = re.compile(r"(_KEY|_KEYS|_SECRET|_PASSWORD)$")
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[?-])(?P<arg>[^}]*))?\}")


def _env_file(path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        found = env.get(match["name"], "")
        if match["op"] == "?" and not found:
            raise AssertionError(f"compose needs {match['name']}: {match['arg']}")
        return found or (match["arg"] if match["op"] == "-" else "")

    return _VARIABLE.sub(substitute, str(value))


def _app_environment(env: dict[str, str]) -> dict[str, str]:
    return {
        name: _interpolate(value, env) for name, value in _compose()["services"]["web"]["environment"].items()
    }


def test_compose_passes_every_secret_the_settings_read_and_nothing_no_setting_reads():
    from mailplatform.env import NAMES_READ

    services = _compose()["services"]
    for name in ("web", "worker", "beat", "bounces", "migrate"):
        keys = set(services[name]["environment"])
        unread = keys - NAMES_READ
        assert not unread, f"{name} passes {sorted(unread)}, which no setting reads"
        secrets_read = {n for n in NAMES_READ if SECRET_NAME.search(n)} - LEGACY_NAMES
        missing = secrets_read - keys
        assert not missing, f"{name} does not pass {sorted(missing)}, which the settings read"
    # ...and every one of them comes from the env file, none is written into the compose file.
    raw = (REPO_ROOT / "docker-compose.yml").read_text()
    example = _env_file(REPO_ROOT / ".env.example")
    for name in secrets_read:
        assert re.search(rf"^\s+{name}: \$\{{{name}:[?-]", raw, re.M), f"{name} is not read from .env"
        assert name in example, f".env.example does not document {name}"
    assert "RELAY_SECRET_KEYS" not in raw


@pytest.mark.slow
def test_check_deploy_is_clean_with_the_compose_production_settings():
    from cryptography.fernet import Fernet

    env = _env_file(REPO_ROOT / ".env.example")
    # The example's placeholders are meant to be replaced: generate what a deployment would.
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        POSTGRES_PASSWORD=secrets.token_urlsafe(16),
        ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    app_env = _app_environment(env)
    assert app_env["SITE_URL"].startswith("https://") and app_env["DEBUG"] == "false"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env={**base, **app_env, "DJANGO_SETTINGS_MODULE": "mailplatform.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_every_install_takes_the_locked_set_by_hash_then_the_project_without_deps():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps -e ." in dockerfile
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "LOCK := requirements-dev.lock" in makefile
    assert "pip install --quiet --require-hashes -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    # The install stamp names the lock, so a pull that changes it reinstalls.
    assert "cat pyproject.toml $(LOCK) | sha1sum" in makefile
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_health_checks_name_real_probes():
    from django.core.management import get_commands
    from django.urls import resolve

    services = _compose()["services"]
    web_check = " ".join(services["web"]["healthcheck"]["test"])
    assert "/readyz" in web_check and resolve("/readyz").url_name == "readyz"
    worker_check = services["worker"]["healthcheck"]["test"]
    assert worker_check[1:4] == ["python", "manage.py", "worker_health"]
    assert "worker_health" in get_commands()


def test_the_image_copies_every_app_and_has_the_postgresql_client_for_backups():
    from django.apps import apps

    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    ours = {
        config.name.split(".")[0]
        for config in apps.get_app_configs()
        if (REPO_ROOT / config.name.split(".")[0]).is_dir()
    }
    assert ours <= copied, f"apps the image leaves out: {sorted(ours - copied)}"
    assert "postgresql-client" in dockerfile  # manage.py backup / restore run pg_dump and pg_restore


def test_the_compose_workers_take_every_queue_and_senders_scale_apart():
    from mailplatform.broker import QUEUES

    services = _compose()["services"]
    taken: set[str] = set()
    for service in services.values():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "mailplatform", "worker"]:
            taken |= set(command[command.index("-Q") + 1].split(","))
            assert "healthcheck" in service  # worker_health
    assert taken == set(QUEUES), f"queues no compose worker takes: {set(QUEUES) - taken}"
    assert services["sender"]["command"][services["sender"]["command"].index("-Q") + 1] == "sending"
    assert "media" in _compose()["volumes"]


def test_the_production_guide_covers_what_an_admin_needs():
    guide = (REPO_ROOT / "docs" / "production.md").read_text()
    for topic in ("--scale sender", "reverse proxy", "X-Forwarded-Proto", "MX", "SPF", "DKIM", "DMARC",
                  "manage.py backup", "restore", "migrate", "worker_cpu_ms_per_message", "/readyz"):  # fmt: skip
        assert topic in guide, topic
