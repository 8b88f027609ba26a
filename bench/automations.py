"""Automations benchmark: python bench/automations.py --contacts N (default 100,000).

N contacts enter a series: send A, wait a day, branch on "opened A" (deadline a day; openers end),
send B. Real Celery worker processes run the scheduler (automations.tasks.tick, with the clock
moved on by the benchmark instead of slept) and send to Postfix's smtp-sink on loopback, which
dumps every transaction. A transition is one run moving from one step to the next (its send, if
any, enqueued in the ledger): each run makes four (send A -> wait -> branch -> send B -> end).

The scheduler runs on a worker of its own (`--scheduler-workers`, 1), as in docker-compose.yml where
the `default` worker schedules and the `sending` one sends; 0 puts it on the send workers. Its CPU
seconds (the worker process, and its PostgreSQL backend's when the server is local) are printed with
`transitions_per_cpu_s`: on a shared machine they say more than the wall time.

Then the same N contacts get one campaign-style Mailing through the same workers to a second
sink: `ratio` is the automation's sends per second over the campaign's. Both sinks are counted
per address: `duplicates` and `missing` over the 2N automation mails and N campaign mails.

Runs on a database of its own on the server DATABASE_URL names (or the embedded one), with Celery
queues and a Redis prefix of its own; the database is dropped afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402
from cpuwatch import cpu_seconds  # noqa: E402
from loopback import free_port  # noqa: E402
from send import (  # noqa: E402
    count_sink,
    create_audience,
    start_sink,
    start_workers,
    stop,
    template_source,
    workers_cpu_seconds,
)

DAY = 86400


SCHEDULER_APP = f"posthorn-bench-scheduler-{os.getpid()}"


class SchedulerCpu:
    """CPU seconds of the scheduler workers and of their PostgreSQL backends between start() and
    stop(). The backends are found by the application_name PGAPPNAME gives them and read from /proc
    (so only for a server on this machine) at every sample(): a backend that closes loses at most its
    last moments. Without scheduler workers of their own there is nothing apart to measure: None."""

    def __init__(self, workers: list[subprocess.Popen]) -> None:
        self.workers = workers
        self.worker = [0.0, 0.0]
        self.backends: dict[int, list[float]] = {}  # pid: [seconds at start or 0, seconds last seen]
        self.readable = True
        self.running = False

    def sample(self, *, first: bool = False) -> None:
        if not self.workers or not (self.running or first):
            return
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [SCHEDULER_APP])
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            seconds = cpu_seconds(pid)
            if seconds is None:
                self.readable = False
                continue
            self.backends.setdefault(pid, [seconds if first else 0.0, seconds])[1] = seconds

    def start(self) -> None:
        if self.workers:
            self.worker[0] = workers_cpu_seconds(self.workers)
            self.sample(first=True)
            self.running = True

    def stop(self) -> None:
        if self.workers:
            self.sample()
            self.worker[1] = workers_cpu_seconds(self.workers)
            self.running = False

    def seconds(self) -> dict[str, float | None]:
        if not self.workers:
            return {"worker": None, "database": None, "total": None}
        worker = round(self.worker[1] - self.worker[0], 2)
        database = round(sum(last - first for first, last in self.backends.values()), 2)
        if not self.readable:
            return {"worker": worker, "database": None, "total": worker}
        return {"worker": worker, "database": database, "total": worker + database}


def wait_for(condition, workers, timeout: float, label: str, beat=None, sample=None) -> float:
    """Seconds until `condition()` holds; `beat()` is called every 2 s meanwhile (as Celery beat would
    queue the scheduler again: one tick stops after AUTOMATIONS_TICK_MAX_SECONDS)."""
    start = time.perf_counter()
    last = beaten = 0.0
    while not condition():
        if beat is not None and time.perf_counter() - beaten > 2:
            if beaten:
                beat()
            beaten = time.perf_counter()
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"timed out waiting for {label}")
        if any(w.poll() is not None for w in workers):
            raise RuntimeError("a worker exited during the benchmark")
        if time.perf_counter() - last > 5:
            last = time.perf_counter()
            print(f"  waiting for {label} ({time.perf_counter() - start:.0f}s)", flush=True)
        if sample is not None:
            sample()
        time.sleep(0.1)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes that send")
    parser.add_argument(
        "--scheduler-workers",
        type=int,
        default=1,
        help="Celery worker processes that only schedule (0: the send workers schedule too)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="give up after this many seconds per phase"
    )
    args = parser.parse_args()
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.scheduler_workers < 0:
        parser.error("--scheduler-workers must be 0 or more")
    with own_database("automations"):
        pid = os.getpid()
        os.environ["CACHE_KEY_PREFIX"] = f"posthorn-bench-auto-{pid}"
        os.environ["DELIVERY_SEND_QUEUE"] = f"bench-auto-send-{pid}"
        os.environ["AUTOMATIONS_QUEUE"] = f"bench-auto-sched-{pid}"
        os.environ["DELIVERY_PARALLEL"] = str(args.workers)
        work = Path(tempfile.mkdtemp(prefix="posthorn-bench-auto-"))
        work.chmod(0o777)  # smtp-sink drops to `nobody` and writes its dump here
        sinks: list[subprocess.Popen] = []
        try:
            import django

            django.setup()
            return run(args, work, sinks)
        finally:
            for sink in sinks:
                sink.terminate()
                sink.wait(10)
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, sinks: list[subprocess.Popen]) -> int:
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from automations import services
    from automations.models import Run, RunEvent, Step
    from automations.selectors import ledger_rows_per_run_and_step, mailing_ids_of
    from contacts.selectors import audience_sql
    from delivery import mailings
    from delivery.models import Message, Relay, SendingIdentity
    from mailplatform.celery import app
    from templates.services import template_create

    call_command("migrate", verbosity=0)
    n = args.contacts
    start = time.perf_counter()
    list_id = create_audience(n)
    print(f"created {n:,} contacts in {time.perf_counter() - start:.1f}s")
    subject, html = template_source()
    first = template_create(name="A", subject="A: " + subject, html=html)
    second = template_create(name="B", subject="B: " + subject, html=html)
    SendingIdentity.objects.get_or_create(address="example.com")
    auto_port, campaign_port = free_port(), free_port()
    sinks.append(start_sink(auto_port, work / "auto.dump"))
    sinks.append(start_sink(campaign_port, work / "campaign.dump"))
    auto_relay = Relay.objects.create(
        name="sink-auto", host="127.0.0.1", port=auto_port, security="none", max_connections=args.workers
    )

    services.kick = lambda: None  # the benchmark sends the ticks itself, with its clock
    automation = services.automation_create(
        name="Bench series", trigger="manual", from_email="news@example.com", from_name="Bench"
    )
    services.step_add(automation.pk, kind="send", template_id=first.pk)
    services.step_add(automation.pk, kind="wait", config={"mode": "duration", "seconds": DAY})
    branch = services.step_add(
        automation.pk, kind="branch", config={"condition": "opened", "deadline_seconds": DAY}
    )
    services.step_add(automation.pk, kind="end")
    send_b = services.step_add(automation.pk, kind="send", template_id=second.pk)
    services.step_update(branch.pk, config={**branch.config, "otherwise": send_b.key})
    services.automation_set_status(automation.pk, "active")
    start = time.perf_counter()
    entered = services.enrol(automation.pk, audience_sql(list_ids=[list_id]))
    enrol_s = time.perf_counter() - start
    print(f"enrolled {entered:,} contacts in {enrol_s:.2f}s")

    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "REDIS_URL": settings.REDIS_URL,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    send_queue, scheduler_queue = os.environ["DELIVERY_SEND_QUEUE"], os.environ["AUTOMATIONS_QUEUE"]
    if args.scheduler_workers:
        schedulers = start_workers(
            args.scheduler_workers,
            {**env, "PGAPPNAME": SCHEDULER_APP},
            queues=scheduler_queue,
            label="sched",
        )
        workers = schedulers + start_workers(args.workers, env, queues=send_queue, label="auto")
    else:
        workers = start_workers(args.workers, env, queues=f"{scheduler_queue},{send_queue}", label="auto")
        schedulers = []
    steps = {s.position: s.pk for s in Step.objects.filter(automation=automation)}
    t0 = timezone.now()

    def tick(now: dt.datetime) -> None:
        app.send_task(
            "automations.tasks.tick", kwargs={"now": now.isoformat()}, queue=os.environ["AUTOMATIONS_QUEUE"]
        )

    def at_step(position: int) -> int:
        return Run.objects.filter(automation=automation, status="active", step_id=steps[position]).count()

    def sent_of(step_position: int) -> int:
        from automations.models import StepMailing

        ids = list(
            StepMailing.objects.filter(step_id=steps[step_position]).values_list("mailing_id", flat=True)
        )
        return Message.objects.filter(mailing_id__in=ids, state__in=["sent", "failed", "skipped"]).count()

    scheduler_s = send_s = 0.0
    cpu = SchedulerCpu(schedulers)
    try:
        from mailplatform.celery import app as celery_app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(celery_app.control.ping(timeout=0.5) or []) < len(workers):
            pass
        cpu.start()
        # Day 0: everyone is sent A and waits.
        start = time.perf_counter()
        tick(t0)
        scheduler_s += wait_for(
            lambda: at_step(2) == n,
            workers,
            args.timeout,
            "runs to reach the wait",
            beat=lambda: tick(t0),
            sample=cpu.sample,
        )
        wait_for(lambda: sent_of(1) == n, workers, args.timeout, "A to be sent")
        send_s += time.perf_counter() - start
        # Day 1: the wait is over; nobody opened, so they wait at the branch for its deadline.
        start = time.perf_counter()
        day1 = t0 + dt.timedelta(days=1, minutes=1)
        tick(day1)
        scheduler_s += wait_for(lambda: at_step(3) == n and not Run.objects.filter(automation=automation, step_id=steps[3], next_at__lte=day1).exists(), workers, args.timeout, "runs to reach the branch", beat=lambda: tick(day1), sample=cpu.sample)  # fmt: skip
        # Day 2: the deadline passed: the other way, send B, the end.
        start = time.perf_counter()
        day2 = t0 + dt.timedelta(days=2, minutes=5)
        tick(day2)
        scheduler_s += wait_for(lambda: not Run.objects.filter(automation=automation, status="active").exists(), workers, args.timeout, "runs to finish", beat=lambda: tick(day2), sample=cpu.sample)  # fmt: skip
        cpu.stop()
        wait_for(lambda: sent_of(5) == n, workers, args.timeout, "B to be sent")
        send_s += time.perf_counter() - start

        # The same messages as a campaign, through the same workers, to the other sink.
        Relay.objects.filter(pk=auto_relay.pk).update(enabled=False)
        campaign_relay = Relay.objects.create(
            name="sink-campaign",
            host="127.0.0.1",
            port=campaign_port,
            security="none",
            max_connections=args.workers,
        )
        mailing = mailings.mailing_create(
            name="Bench campaign", compiled=__import__("templates.services").services.template_compile(first.pk),
            from_email="news@example.com", from_name="Bench", list_ids=[list_id], relay_ids=[campaign_relay.pk],
        )  # fmt: skip
        start = time.perf_counter()
        mailings.mailing_start(mailing.pk, audience=audience_sql(list_ids=[list_id]))
        wait_for(
            lambda: Message.objects.filter(mailing=mailing, state__in=["sent", "failed", "skipped"]).count() >= n,
            workers, args.timeout, "the campaign",
        )  # fmt: skip
        campaign_s = time.perf_counter() - start
    finally:
        stop(workers)
    transitions = RunEvent.objects.filter(run__automation=automation).exclude(kind="entered").count()
    rows, keys = ledger_rows_per_run_and_step(automation.pk)
    states = collections.Counter(
        Message.objects.filter(mailing_id__in=mailing_ids_of(automation.pk)).values_list("state", flat=True)
    )
    print(
        f"scheduler: {transitions:,} transitions in {scheduler_s:.2f}s; ledger rows {rows:,}, distinct keys {keys:,}"
    )
    print(f"automation mail: {states} in {send_s:.2f}s; campaign: {n:,} in {campaign_s:.2f}s")
    time.sleep(0.5)  # the sinks append to their dumps asynchronously
    expected = {f"user{i}@example.com" for i in range(1, n + 1)}
    auto_received, auto_dup, auto_missing = count_sink(work / "auto.dump", expected, 2)
    camp_received, camp_dup, camp_missing = count_sink(work / "campaign.dump", expected, 1)
    print(f"sinks: automation {auto_received:,} received; campaign {camp_received:,} received")
    scheduler_cpu = cpu.seconds()
    print(f"scheduler CPU: {scheduler_cpu} s (worker, database backend) at load {os.getloadavg()[0]:.1f}")
    sends = states.get("sent", 0)
    sends_per_s = sends / send_s if send_s else 0.0
    campaign_per_s = n / campaign_s if campaign_s else 0.0
    print(
        json.dumps(
            {
                "contacts": n,
                "workers": args.workers,
                "transitions": transitions,
                "transitions_per_s": round(transitions / scheduler_s, 1) if scheduler_s else 0.0,
                "scheduler_workers": args.scheduler_workers,
                "scheduler_cpu_s": scheduler_cpu["worker"],
                "scheduler_db_cpu_s": scheduler_cpu["database"],
                "transitions_per_cpu_s": round(transitions / scheduler_cpu["total"], 1)
                if scheduler_cpu["total"]
                else None,
                "enrol_per_s": round(entered / enrol_s, 1) if enrol_s else 0.0,
                "sends": sends,
                "sends_per_s": round(sends_per_s, 1),
                "campaign_sends_per_s": round(campaign_per_s, 1),
                "ratio": round(sends_per_s / campaign_per_s, 3) if campaign_per_s else 0.0,
                "ledger_rows": rows,
                "ledger_keys": keys,
                "received": auto_received + camp_received,
                "duplicates": auto_dup + camp_dup,
                "missing": auto_missing + camp_missing,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
