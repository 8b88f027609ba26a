"""Two real beat processes: only the lock holder sends; a killed leader is replaced within the lock's life."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from mailplatform import beat_lock
from mailplatform.devstack import celery_command
from mailplatform.redis_cache import redis_client
from tests.conftest import REPO_ROOT, database_url_for_tests, stop_processes

SENT = "Sending due task"


def test_the_lock_is_taken_once_renewed_by_its_holder_and_released_only_by_it(settings):
    redis_client().delete(beat_lock.lock_key())
    first, second = beat_lock.BeatLock(15), beat_lock.BeatLock(15)
    try:
        assert first.hold() and not second.hold()
        assert first.hold()  # renewing
        assert 14_000 < redis_client().pttl(beat_lock.lock_key()) <= 15_000
        second.release()  # not its lock: nothing happens
        assert beat_lock.current_leader() == first.token
        first.release()
        assert second.hold()
    finally:
        redis_client().delete(beat_lock.lock_key())


def _spare_broker(redis_url: str, db: int) -> str:
    """The same Redis, another database: what the beats send lands where no test worker reads."""
    if "virtual_host=" in redis_url:
        return re.sub(r"virtual_host=\d+", f"virtual_host={db}", redis_url)
    return re.sub(r"/\d*$", f"/{db}", redis_url)


def _wait(predicate, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    return None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_second_beat_sends_nothing_and_takes_over_when_the_first_dies(tmp_path: Path):
    redis_client().delete(beat_lock.lock_key())
    broker = _spare_broker(settings.REDIS_URL, 9)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings_test",
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker,
        "PYTHONUNBUFFERED": "1",
    }
    processes: dict[str, subprocess.Popen] = {}
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}

    def start(name: str) -> subprocess.Popen:
        argv = celery_command("beat", "-l", "INFO",
                "-s", str(tmp_path / f"schedule-{name}"))  # fmt: skip
        with logs[name].open("w") as out:
            processes[name] = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return processes[name]

    def sent(name: str) -> int:
        return logs[name].read_text().count(SENT)

    def leader_pid() -> int | None:
        holder = beat_lock.current_leader()
        return int(holder.split(":")[1]) if holder else None

    try:
        a = start("a")
        assert _wait(lambda: leader_pid() == a.pid, 30) is not None, logs["a"].read_text()
        b = start("b")
        assert _wait(lambda: "standing by" in logs["b"].read_text(), 30) is not None, logs["b"].read_text()
        assert _wait(lambda: sent("a") >= 3, 30) is not None, "the leader sent nothing"
        time.sleep(settings.BEAT_LOCK_SECONDS / 3 + 1)  # the standby has tried again at least once
        assert sent("b") == 0, "the standby beat sent due tasks while the leader lived"
        assert leader_pid() == a.pid

        os.kill(a.pid, signal.SIGKILL)  # no clean stop: its key has to expire
        a.wait(10)
        takeover = _wait(lambda: sent("b") > 0, settings.BEAT_LOCK_SECONDS + 15)
        assert takeover is not None, "nobody took over from the dead beat"
        assert leader_pid() == b.pid
        print(f"\nbeat: the standby took over {takeover:.1f} s after the leader was killed")
        assert takeover <= settings.BEAT_LOCK_SECONDS + beat_lock.STANDBY_RETRY_SECONDS + 2

        stop_processes([b])  # a clean stop gives the lock back at once
        assert beat_lock.current_leader() is None
    finally:
        stop_processes(list(processes.values()))
        from mailplatform.redis_cache import _client_for

        _client_for(broker).flushdb()
        redis_client().delete(beat_lock.lock_key())
