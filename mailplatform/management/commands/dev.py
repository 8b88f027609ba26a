import os
import signal

import fasteners
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mailplatform.devstack import Supervisor, default_children
from mailplatform.paths import RUN_DIR, ensure_var
from mailplatform.services import ensure_first_admin


class Command(BaseCommand):
    help = "Run the whole platform locally: web, worker, beat and capture relay on the embedded servers."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address for the web server")

    def handle(self, *args, addr: str, **options):
        ensure_var()
        lock = fasteners.InterProcessLock(str(RUN_DIR / "dev.lock"))
        if not lock.acquire(blocking=False):
            raise CommandError(
                f"the data directory {RUN_DIR.parent} is in use by another `make run`; stop it first"
            )
        try:
            self._run(addr)
        finally:
            lock.release()

    def _run(self, addr: str) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        created = ensure_first_admin()
        if created:
            user, password = created
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nFirst run: created the admin account.\n  username: {user.username}\n  password: {password}\n"
                    "This password is shown only once; change it under Password after logging in.\n"
                )
            )
        env = {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
        }
        supervisor = Supervisor(default_children(addr), env, self.stdout.write)
        # SIGTERM and SIGINT become a normal exit so the embedded servers are stopped by their
        # clean-up. SIGINT is set explicitly: a shell that backgrounds us leaves it ignored.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: supervisor.stopping.set())
        supervisor.start()
        self.stdout.write(
            self.style.SUCCESS(f"Posthorn is running at http://{addr}/  (Ctrl-C stops everything)")
        )
        try:
            supervisor.watch()
        except KeyboardInterrupt:
            pass
        finally:
            self.stdout.write("stopping…")
            supervisor.stop()
            self.stdout.write("stopped")
