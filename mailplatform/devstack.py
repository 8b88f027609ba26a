"""The supervisor behind `make run`: one launcher owns the embedded servers and runs every
other process as a child that inherits their addresses, so children never start servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailplatform.paths import REPO_ROOT, VAR_DIR

RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0


@dataclass
class ChildSpec:
    name: str
    argv: list[str]


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen
    restarts: list[float] = field(default_factory=list)


def celery_command(*args: str) -> list[str]:
    """`celery -A mailplatform ARGS` with this interpreter (dev stack, benchmarks and tests)."""
    return [sys.executable, "-m", "celery", "-A", "mailplatform", *args]


def default_children(addr: str) -> list[ChildSpec]:
    python = sys.executable
    manage = str(REPO_ROOT / "manage.py")
    return [
        ChildSpec("web", [python, manage, "runserver", addr, "--noreload"]),
        ChildSpec(
            "worker",
            celery_command(
                "worker",
                "-l",
                "INFO",
                "-Q",
                "default,imports,sending,bounces",
                "--concurrency",
                "2",
                "-n",
                "dev@%h",
            ),
        ),
        ChildSpec(
            "beat",
            celery_command("beat", "-l", "INFO", "-s", str(VAR_DIR / "run" / "celerybeat-schedule")),
        ),
        ChildSpec("capture", [python, manage, "capture_relay"]),
        ChildSpec("bounces", [python, manage, "bounce_server"]),
    ]


class Supervisor:
    def __init__(self, specs: list[ChildSpec], env: dict[str, str], write: Callable[[str], None]) -> None:
        self.specs = specs
        self.env = env
        self.write = write
        self.children: dict[str, Child] = {}
        self.stopping = threading.Event()
        self._write_lock = threading.Lock()
        self.width = max(len(spec.name) for spec in specs)

    def _emit(self, name: str, line: str) -> None:
        with self._write_lock:
            self.write(f"{name.ljust(self.width)} | {line.rstrip()}")

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen:
        process = subprocess.Popen(
            spec.argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            # Own process group: Ctrl-C reaches only us, and we stop children in order.
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(spec.name, process), daemon=True).start()
        return process

    def _pump(self, name: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._emit(name, line)

    def start(self) -> None:
        for spec in self.specs:
            self.children[spec.name] = Child(spec, self._spawn(spec))

    def watch(self) -> None:
        """Restart a child that died; give up (and stop all) if one keeps dying."""
        while not self.stopping.wait(0.5):
            for child in self.children.values():
                code = child.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(child.restarts) > RESTART_LIMIT:
                    self._emit(
                        child.spec.name,
                        f"exited {code} {RESTART_LIMIT} times in a minute; stopping everything",
                    )
                    self.stopping.set()
                    return
                self._emit(child.spec.name, f"exited with status {code}; restarting")
                child.process = self._spawn(child.spec)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for child in self.children.values():
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                self._emit(child.spec.name, "did not stop in time; killing")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
