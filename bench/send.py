"""Send benchmark: python bench/send.py --messages N (default 100,000).

Starts Postfix's smtp-sink on loopback (dumping every transaction to a file), creates N
contacts on a list and a mailing from a 10 KB template with 5 merge fields (no DKIM), and
runs it through real Celery worker processes until every Message is sent. Then it counts the
recipients in the sink's dump (duplicates and missing), and runs the reference: Postfix's
smtp-source with 16 sessions sending N messages of 10 KB to the same sink. DKIM signing is
measured separately (a 2048-bit key over the same message).

With --domains (issue #21): the recipients are spread over 20 receiving domains and the same
send runs twice, once with no domain limit and once with one domain limited to --limit msg/s
(DELIVERY_DOMAIN_LIMITS in the workers' environment). It reports the other 19 domains' rate with
the limit over their rate without it (`others_ratio`, want >= 0.9: no head-of-line blocking),
and the limited domain's own rate (`limited_per_s`, want --limit +- 5 %), from the ledger's sent
times; each run has its own sink, counted for missing and duplicated recipients.

Runs on a database of its own (posthorn_bench_send_<pid>) on the server DATABASE_URL names,
or on the embedded server, with a Celery queue and Redis key prefix of its own; the database
is dropped afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402
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


def start_sink(port: int, dump: Path | None) -> subprocess.Popen:
    argv = [postfix_tool("smtp-sink")]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]  # it refuses to run as root
    if dump is not None:
        argv += ["-D", str(dump)]
    argv += [f"127.0.0.1:{port}", "1024"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        help="run the sink without its dump (it then sends ~2x faster) and count nothing at the sink: "
        "received, duplicates and missing are reported as -1",
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
        sink = None
        try:
            import django

            django.setup()
            if args.domains:
                return run_domains(args, work)
            port = free_port()
            sink = start_sink(port, None if args.no_dump else work / "dump")
            return run(args, port, work / "dump")
        finally:
            if sink is not None:
                sink.terminate()
                sink.wait(10)
            shutil.rmtree(work, ignore_errors=True)


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
    count: int, env: dict[str, str], *, queues: str | None = None, label: str = "bench"
) -> list[subprocess.Popen]:
    """`count` solo workers named `<label><i>-<pid>@host` on `queues` (default: the send queue)."""
    return [
        subprocess.Popen(
            celery_command(
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
            ),  # fmt: skip
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
        )
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


def run(args: argparse.Namespace, port: int, dump: Path) -> int:
    from django.core.management import call_command

    from contacts.selectors import audience_sql
    from delivery import mailings
    from delivery.models import Message, Relay, SendingIdentity
    from templates.compiler import compile_template

    call_command("migrate", verbosity=0)
    n = args.messages
    start = time.perf_counter()
    list_id = create_audience(n)
    print(f"created {n:,} contacts in {time.perf_counter() - start:.1f}s")

    subject, html = template_source()
    compiled = compile_template(subject=subject, html=html)
    assert not compiled.uses_logic
    relay = Relay.objects.create(
        name="smtp-sink", host="127.0.0.1", port=port, security="none", max_connections=args.workers
    )
    SendingIdentity.objects.get_or_create(address="example.com")  # the From must be an identity
    mailing = mailings.mailing_create(
        name="Bench",
        compiled=compiled,
        from_email="news@example.com",
        from_name="Bench",
        list_ids=[list_id],
        relay_ids=[relay.pk],
    )
    start = time.perf_counter()
    planned = mailings.mailing_plan(mailing.pk, audience=audience_sql(list_ids=[list_id]))
    plan_s = time.perf_counter() - start
    print(f"planned {planned:,} messages in {plan_s:.2f}s ({planned / plan_s:,.0f}/s)")

    workers = start_workers(args.workers, _worker_env({}))
    try:
        _wait_for_workers(args.workers)
        cpu_before = workers_cpu_seconds(workers)
        start = time.perf_counter()
        mailings.mailing_start(mailing.pk)
        _wait_until_done(mailing, planned, workers, args.timeout, label="sent")
        seconds = time.perf_counter() - start
        worker_cpu = workers_cpu_seconds(workers) - cpu_before
    finally:
        stop(workers)
    states = dict(
        Message.objects.filter(mailing=mailing)
        .values_list("state")
        .annotate(n=__import__("django").db.models.Count("id"))
    )
    mailing.refresh_from_db()
    rate = states.get("sent", 0) / seconds
    print(
        f"sent {states.get('sent', 0):,} in {seconds:.2f}s: {rate:,.0f} msg/s with {args.workers} workers; states {states}"
    )
    sample = Message.objects.filter(mailing=mailing).first()
    size = len(_build_one(mailing, sample)) if sample else 0
    print(f"message size: {size:,} bytes")
    # Sizing (docs/production.md): the workers' own CPU per message, so messages per hour per busy
    # worker process. PostgreSQL's and Redis's CPU are not in it.
    cpu_ms = 1000 * worker_cpu / max(states.get("sent", 0), 1)
    per_hour = 3_600_000 / cpu_ms if cpu_ms else 0.0
    print(
        f"worker CPU: {worker_cpu:.2f}s = {cpu_ms:.3f} ms/message, {per_hour:,.0f} messages/hour per busy process"
    )
    time.sleep(0.5)  # the sink appends to its dump asynchronously
    expected = {f"user{i}@example.com" for i in range(1, n + 1)}
    if args.no_dump:
        received = duplicates = missing = -1
        print("sink: not counted (--no-dump)")
    else:
        received, duplicates, missing = count_sink(dump, expected)
        print(f"sink: {received:,} received, {duplicates} duplicates, {missing} missing")

    # Reference: smtp-source, 16 sessions, N messages of 10 KB, same sink.
    source = postfix_tool("smtp-source")
    source_s = smtp_source_seconds(source, n, port)
    source_rate = n / source_s
    print(f"smtp-source: {n:,} in {source_s:.2f}s: {source_rate:,.0f} msg/s; ratio {rate / source_rate:.2f}")
    # For context only: the same reference against a sink that keeps nothing (the dump costs the sink).
    bare_port = free_port()
    bare = start_sink(bare_port, None)
    try:
        bare_rate = n / smtp_source_seconds(source, n, bare_port)
    finally:
        bare.terminate()
        bare.wait(10)
    print(f"smtp-source against a sink without a dump: {bare_rate:,.0f} msg/s")

    signed, unsigned = dkim_rate(
        dict(
            mailing_id=mailing.pk,
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
    print(
        json.dumps(
            {
                "messages": n,
                "workers": args.workers,
                "sent": states.get("sent", 0),
                "seconds": round(seconds, 3),
                "msgs_per_s": round(rate, 1),
                "plan_per_s": round(planned / plan_s, 1),
                "smtp_source_per_s": round(source_rate, 1),
                "ratio": round(rate / source_rate, 3),
                "smtp_source_no_dump_per_s": round(bare_rate, 1),
                "received": received,
                "duplicates": duplicates,
                "missing": missing,
                "dkim_sign_per_s": round(signed, 1),
                "build_per_s": round(unsigned, 1),
                "message_bytes": size,
                "worker_cpu_s": round(worker_cpu, 3),
                "worker_cpu_ms_per_message": round(cpu_ms, 4),
                "messages_per_hour_per_process": round(per_hour),
                "mailing_state": mailing.state,
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
