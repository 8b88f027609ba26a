"""Fault benchmark: python bench/faults.py --messages N (default 50,000).

One mailing of N messages through real Celery workers (and a beat) to a sink on loopback that
counts every Message-ID, struck three times while it sends:

  1. kill -9 of every worker and the beat at 10 %, then both workers and the beat started again:
     seconds from the restart to the next delivery, and from the kill;
  2. kill -9 of one worker at 40 %, a replacement started at once: the longest pause in deliveries
     after the kill, and when the replacement's first session delivered;
  3. SIGTERM of one worker at 70 % (a replacement started once it has gone): how long it took to exit.

At the end: received, missing, duplicates, how many rows the ledger names as possibly sent twice,
and duplicates it does not name (must be 0). Leases, heartbeat and watchdog are the production
settings unless given. Runs on a database of its own (dropped afterwards), with a Celery queue and
Redis key prefix of its own. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument(
        "--rate", type=int, default=1000, help="the relay's messages per second (0: unlimited)"
    )
    parser.add_argument(
        "--lease", type=int, default=0, help="DELIVERY_LEASE_SECONDS (default: the setting's)"
    )
    parser.add_argument("--heartbeat", type=int, default=0, help="DELIVERY_HEARTBEAT_SECONDS")
    parser.add_argument("--watchdog", type=int, default=0, help="DELIVERY_WATCHDOG_SECONDS")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    args = parser.parse_args()
    if args.messages < 100:
        parser.error("--messages must be at least 100 (the strikes happen at 10, 40 and 70 %)")
    if args.rate < 0:
        parser.error("--rate must be 0 or more")

    # A `timeout` or Ctrl-C still stops the workers and drops the database (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with own_database("faults"):
        os.environ["CACHE_KEY_PREFIX"] = f"posthorn-bench-{os.getpid()}"
        os.environ["DELIVERY_SEND_QUEUE"] = f"bench-faults-{os.getpid()}"
        os.environ["DELIVERY_PARALLEL"] = "2"
        for option, name in (
            ("lease", "DELIVERY_LEASE_SECONDS"),
            ("heartbeat", "DELIVERY_HEARTBEAT_SECONDS"),
            ("watchdog", "DELIVERY_WATCHDOG_SECONDS"),
        ):
            if getattr(args, option):
                os.environ[name] = str(getattr(args, option))
        import django

        django.setup()
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.conf import settings
    from django.core.management import call_command
    from send import create_audience, template_source

    from delivery import mailings as services
    from delivery.models import Message, Relay, SendingIdentity
    from templates.compiler import compile_template
    from tests.delivery.faults import CountingSink, Fleet, wait_for

    call_command("migrate", verbosity=0)
    n = args.messages
    list_id = create_audience(n)
    subject, html = template_source()
    env = {
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings",
    }
    figures: dict[str, object] = {
        "messages": n,
        "rate": args.rate,
        "lease_s": settings.DELIVERY_LEASE_SECONDS,
        "heartbeat_s": settings.DELIVERY_HEARTBEAT_SECONDS,
        "watchdog_s": settings.DELIVERY_WATCHDOG_SECONDS,
    }
    with CountingSink() as sink:
        relay = Relay.objects.create(
            name="counting sink", host="127.0.0.1", port=sink.port, security="none", max_connections=2,
            per_second=args.rate, burst=max(1, args.rate // 10),
        )  # fmt: skip
        SendingIdentity.objects.get_or_create(address="example.com")  # the From must be an identity
        mailing = services.mailing_create(
            name="Faults",
            compiled=compile_template(subject=subject, html=html),
            from_email="news@example.com",
            from_name="Bench",
            list_ids=[list_id],
            relay_ids=[relay.pk],
        )
        fleet = Fleet(env, queues=os.environ["DELIVERY_SEND_QUEUE"], settings_module="mailplatform.settings")
        try:
            first, second = fleet.start_worker(), fleet.start_worker()
            fleet.start_beat()
            start = time.monotonic()
            services.mailing_start(mailing.pk)
            timeout = args.timeout

            def reach(fraction: float) -> None:
                if not wait_for(lambda: sink.total >= n * fraction, timeout, every=0.05):
                    raise RuntimeError(f"never reached {fraction:.0%}: {sink.total} received")

            # 1. kill -9 of everything, restarted.
            reach(0.10)
            fleet.kill_all()
            killed = time.monotonic()
            print(f"kill -9 of both workers and the beat at {sink.total:,} received", flush=True)
            first, second = fleet.start_worker(), fleet.start_worker()
            fleet.start_beat()
            restarted = time.monotonic()
            wait_for(lambda: sink.first_arrival_after(restarted) is not None, timeout, every=0.05)
            resumed = sink.first_arrival_after(restarted)
            figures["kill_all_restart_after_s"] = round(restarted - killed, 2)
            figures["kill_all_resumed_after_restart_s"] = round(resumed - restarted, 2)
            figures["kill_all_resumed_after_kill_s"] = round(resumed - killed, 2)
            print(
                f"  restarted after {restarted - killed:.1f} s; deliveries resumed {resumed - restarted:.1f} s "
                f"after the restart ({resumed - killed:.1f} s after the kill)",
                flush=True,
            )

            # 2. kill -9 of one worker, a replacement at once.
            reach(0.40)
            fleet.kill(first)
            killed = time.monotonic()
            print(f"kill -9 of one worker at {sink.total:,} received", flush=True)
            sessions_before = sink.handler.connections
            first = fleet.start_worker()
            replaced = time.monotonic()
            # The replacement (or the survivor's next turn) opens a new session; this is when it delivers.
            wait_for(lambda: sink.handler.connections > sessions_before, timeout, every=0.05)
            new_session = time.monotonic()
            reach(0.65)
            pause = sink.longest_pause(killed, time.monotonic())
            figures["kill_one_longest_pause_s"] = round(pause, 2)
            figures["kill_one_new_session_after_replacement_s"] = round(new_session - replaced, 2)
            print(
                f"  longest pause in deliveries {pause:.1f} s; a new session {new_session - replaced:.1f} s "
                "after the replacement started",
                flush=True,
            )

            # 3. SIGTERM of one worker.
            reach(0.70)
            fleet.terminate(second)
            print(f"SIGTERM of one worker at {sink.total:,} received", flush=True)
            exited = fleet.exited_within(second, 60)
            figures["sigterm_exit_s"] = round(exited, 2) if exited is not None else -1
            print(f"  it exited after {exited:.1f} s" if exited is not None else "  still running after 60 s")
            fleet.start_worker()

            done = wait_for(
                lambda: (
                    not Message.objects.filter(
                        mailing=mailing, state__in=["queued", "sending", "deferred"]
                    ).exists()
                ),
                timeout,
                every=0.5,
            )
            seconds = time.monotonic() - start
        finally:
            fleet.stop_all()
        counts = sink.counts()
    ids = set(Message.objects.filter(mailing=mailing).values_list("pk", flat=True))
    named = set(
        Message.objects.filter(mailing=mailing, recovered_at__isnull=False).values_list("pk", flat=True)
    )
    duplicates = {k for k, c in counts.items() if c > 1}
    figures.update(
        {
            "finished": done,
            "seconds": round(seconds, 1),
            "received": sum(counts.values()),
            "missing": len(ids - set(counts)),
            "duplicates": len(duplicates),
            "named": len(named),
            "duplicates_unnamed": len(duplicates - named),
        }
    )
    print(
        f"{figures['received']:,} received for {n:,} messages in {seconds:.1f} s: {figures['missing']} missing, "
        f"{figures['duplicates']} duplicates, {figures['named']} named by the ledger, "
        f"{figures['duplicates_unnamed']} duplicates not named"
    )
    print(json.dumps(figures))
    return 0 if done and not figures["missing"] and not figures["duplicates_unnamed"] else 1


if __name__ == "__main__":
    sys.exit(main())
