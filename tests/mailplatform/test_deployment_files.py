"""docker-compose.yml cannot run here (no Docker engine): check that what it runs exists."""

import importlib.util
import shlex

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
