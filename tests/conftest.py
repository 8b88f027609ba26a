"""Shared fixtures: users per role, a real Celery worker, and the browser harness."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

# Playwright's sync API keeps an event loop running in this thread; the ORM must not refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

REPO_ROOT = Path(__file__).resolve().parent.parent
# The team's shared test data sits beside the clone; POSTHORN_SHARED_DIR points elsewhere (worktrees).
SHARED_DIR = Path(os.environ.get("POSTHORN_SHARED_DIR") or REPO_ROOT.parent / "shared")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_BROWSER = os.environ.get("POSTHORN_REQUIRE_BROWSER") == "1"


@pytest.fixture(autouse=True)
def _fresh_org_cache() -> Iterator[None]:
    """The organisation's details (org_data) are cached in Redis, which outlives each test's
    rolled-back database: every test starts and ends without them, so one test's organisation
    (its default From, say) never leaks into another's campaigns or mail."""
    from django.core.cache import cache

    from mailplatform.selectors import _ORG_CACHE_KEY

    cache.delete(_ORG_CACHE_KEY)
    yield
    cache.delete(_ORG_CACHE_KEY)


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    from mailplatform.models import User

    def make(
        role: str = "marketer", username: str | None = None, password: str = "correct horse battery"
    ) -> User:
        user = User(
            username=username or f"{role}-{User.objects.count() + 1}", email=f"{role}@example.com", role=role
        )
        user.set_password(password)
        user.save()
        return user

    return make


@pytest.fixture
def sending_identity(db):
    """What an admin sets up before sending: example.com (news@example.com, the tests' From) as a
    sending identity, beside the install's default From's domain (delivery.identities)."""
    from delivery.identities import identity_ensure_default, identity_for, identity_save

    identity_ensure_default()
    return identity_for("news@example.com") or identity_save(address="example.com")


@pytest.fixture
def developer_keys_may(db):
    """developer_keys_may(*scopes): an admin raises the developers' API key ceiling to these scopes
    beyond their default (what a developer may do in the dashboard), as Settings > API key limits does."""
    from mailplatform.models import User
    from mailplatform.scopes import scope_ceiling
    from mailplatform.services import scope_ceiling_set

    def allow(*scopes: str) -> None:
        admin = User.objects.filter(role="admin").first() or User.objects.create(
            username="ceiling-admin", role="admin"
        )
        scope_ceiling_set("developer", [*scope_ceiling("developer"), *scopes], by=admin)

    return allow


def _client_for(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def admin_user(make_user):
    return make_user("admin", "boss")


@pytest.fixture
def admin_client(client, admin_user):
    return _client_for(client, admin_user)


@pytest.fixture
def marketer_client(client, make_user):
    return _client_for(client, make_user("marketer", "mara"))


@pytest.fixture
def developer_client(client, make_user):
    return _client_for(client, make_user("developer", "dev"))


def database_url_for_tests() -> str:
    """A URL to the database the tests are using now (the test database, not the dev one)."""
    params = connection.settings_dict
    query = f"?host={params['HOST']}" if params["HOST"].startswith("/") else ""
    host = "" if query else f"{params['HOST']}:{params['PORT'] or 5432}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    return f"postgresql://{auth}@{host}/{params['NAME']}{query}"


def start_celery_worker(
    *,
    queues: str = "default,imports,sending,bounces",
    env: dict[str, str] | None = None,
    label: str = "test",
    host: str = "%h",
    log_file: Path | None = None,
) -> subprocess.Popen:
    """A real Celery worker process on the test database and Redis; returns once it answers a ping.

    `host` names the worker as another machine would (`label-...@host`); with `log_file` it logs at
    INFO into that file instead of WARNING to the terminal."""
    full_env = {
        **os.environ,
        **(env or {}),
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings_test",
        "PYTHONUNBUFFERED": "1",
    }
    from mailplatform.devstack import celery_command

    name = f"{label}-{os.getpid()}-{time.monotonic_ns()}"
    output = log_file.open("a") if log_file is not None else None
    process = subprocess.Popen(
        celery_command("worker", "-l", "INFO" if output else "WARNING",
         "-P", "solo", "-Q", queues, "-n", f"{name}@{host}", "--without-gossip", "--without-mingle"),
        cwd=REPO_ROOT,
        env=full_env,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )  # fmt: skip
    if output is not None:
        output.close()  # the child has its own copy
    from mailplatform.celery import app

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(name in key for reply in replies for key in reply):
            return process
        if process.poll() is not None:
            raise RuntimeError("the Celery worker exited at start-up")
    stop_processes([process])
    raise RuntimeError("the Celery worker did not answer within 30 s")


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def celery_worker_process(transactional_db) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on the test database and Redis; for tests about workers.
    With POSTHORN_TEST_WORKER_LOG=<file> it logs at INFO into that file (to see what it did)."""
    from mailplatform.celery import app

    # Tasks other tests queued without a worker name other tests' rows: running them first would only
    # hold this test's own tasks up behind them (a solo worker takes one at a time).
    app.control.purge()
    log = os.environ.get("POSTHORN_TEST_WORKER_LOG")
    process = start_celery_worker(log_file=Path(log) if log else None)
    yield process
    stop_processes([process])


# --- RabbitMQ: the worker tests run on Redis; tests/*/test_*rabbitmq* run once on RabbitMQ where it runs ---

RABBITMQ_ADDRESS = ("127.0.0.1", 5672)


def _rabbitmq_problem() -> str:
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed"
    try:
        socket.create_connection(RABBITMQ_ADDRESS, timeout=1).close()
    except OSError:
        return f"nothing listens on {RABBITMQ_ADDRESS[0]}:{RABBITMQ_ADDRESS[1]}"
    return ""


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """A virtual host of this test's own on the machine's RabbitMQ (guest/guest), removed after.

    Its own, because a queue declared classic by one test cannot be redeclared quorum by the next.

    Skips where RabbitMQ does not run: the machine's own service, which .ci/run does not install.
    """
    problem = _rabbitmq_problem()
    if problem:
        pytest.skip(f"RabbitMQ broker tests skipped: {problem} (every other worker test runs on Redis)")
    vhost = f"posthorn-test-{os.getpid()}-{time.monotonic_ns()}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ_ADDRESS[0]}:{RABBITMQ_ADDRESS[1]}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@contextmanager
def celery_on_broker(url: str, *, quorum: bool = False) -> Iterator[dict[str, str]]:
    """Point this process's Celery app at another broker; yields the env a worker needs for the same."""
    from mailplatform.broker import celery_queues
    from mailplatform.celery import app

    saved = {key: app.conf[key] for key in ("broker_url", "task_queues", "broker_transport_options")}

    def forget_connections() -> None:
        from kombu import pools

        if app._pool is not None:
            app._pool.force_close_all()
            app._pool = None
        pools.reset()  # kombu's process-wide producer pools hold the closed connections
        app.__dict__.pop("amqp", None)  # its queues, router and producer pool were built for the old one

    forget_connections()
    app.conf.update(
        broker_url=url,
        task_queues=celery_queues(quorum=quorum),
        broker_transport_options={"confirm_publish": True},
    )
    try:
        yield {"CELERY_BROKER_URL": url, "RABBITMQ_QUEUE_TYPE": "quorum" if quorum else "classic"}
    finally:
        forget_connections()
        app.conf.update(saved)


# --- Browser harness: Debian's chromium through playwright's executable_path ---

# The machines are shared and noisy: assertions wait up to 15 s (not 5 s) before failing.
BROWSER_TIMEOUT_MS = 15_000
try:
    from playwright.sync_api import expect as _expect

    _expect.set_options(timeout=BROWSER_TIMEOUT_MS)
except ImportError:  # playwright is a test extra
    pass


@pytest.fixture
def context(context):
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    return context


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, browser_name):
    if browser_name not in (None, "chromium"):
        return browser_type_launch_args
    if CHROMIUM is None:
        message = "chromium is not installed (apt-get install chromium): browser journeys cannot run"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--disable-gpu", "--disable-quic"],
    }


def pytest_report_header(config) -> str:
    if CHROMIUM:
        return f"browser: {CHROMIUM}"
    return "browser: NONE FOUND. Browser journeys will be SKIPPED (install Debian's chromium)."


def pytest_terminal_summary(terminalreporter) -> None:
    if CHROMIUM is None:
        terminalreporter.write_sep(
            "!", "BROWSER TESTS SKIPPED: no chromium on this machine", red=True, bold=True
        )


def shared_corpus(path: str) -> Path:
    """A path under ../shared (the team's test data); skips where a clone has none."""
    target = SHARED_DIR / path
    if not target.exists():
        pytest.skip(f"{target} is absent: this test needs the team's shared corpus (CI has it)")
    return target
