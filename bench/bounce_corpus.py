"""Classifier accuracy against sisimai's answers on the shared corpus, and its speed.

    python bench/bounce_corpus.py [--corpus DIR] [--seconds 5] [--confusion] [--apply 2000] [--listener-clients 8]
                                  [--listener-corpus] [--pipe-clients 20]

Prints per-kind agreement and (with --confusion) the confusion matrix; the LAST line is one
JSON object. Parsing needs no database. With --apply N (default 2000, 0 to skip) it also
times parse + attribution + policy over N token-attributed bounces on a database of its own
(posthorn_bench_bounces_<pid>, dropped afterwards): bounces_per_s through the batch path the
mailbox poller and webhooks use (bounces_process, --batch per transaction), and
single_bounces_per_s through bounce_process, one message per transaction (the MTA pipe), and
listener_bounces_per_s through `manage.py bounce_server` fed by concurrent SMTP sessions
(small generated DSNs, or with --listener-corpus the corpus's own messages), with the CPU each
bounce cost the listener, the senders and PostgreSQL (`total_cpu_ms_per_bounce`,
`cpu_bound_bounces_per_s`: what that CPU allows on this machine's cores), and the MTA pipe run as
Postfix runs it, a process per message, --pipe-clients at a time: `pipe_bounces_per_s` handing
each to the listener (delivery/bounces/pipe.py), `pipe_local_bounces_per_s` the old way (Django
and a transaction per message).
The reference run is the standard library's email parser alone over the same files (ratio).
"""

from __future__ import annotations

import argparse
import csv
import email
import email.policy
import json
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from delivery.bounces import rules  # noqa: E402
from delivery.bounces.classifier import classify  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "bounces"


def expected_kind(row: dict[str, str]) -> str:
    """sisimai's answer mapped onto our kinds, with its own hard/soft rule for notaccept."""
    verdict = row["hard_or_soft"]
    if verdict == "feedback":
        return rules.COMPLAINT
    if verdict == "vacation":
        return rules.AUTO_REPLY
    if verdict == "delivered":
        return "none"
    if verdict == "hard":
        return rules.HARD
    kind = rules.REASON_KIND.get(row["reason"], rules.UNKNOWN)
    return rules.SOFT if kind == rules.HARD else kind


def run(corpus: Path, seconds: float, confusion: bool) -> dict[str, object]:
    rows = list(csv.DictReader((corpus / "expected.tsv").open(encoding="utf-8"), delimiter="\t"))
    files = sorted(p for p in (corpus / "maildir").rglob("*") if p.is_file())
    results: dict[str, list] = {}
    crashes = 0
    for path in files:
        try:
            results[str(path.relative_to(corpus))] = classify(path.read_bytes()).recipients
        except Exception as exc:  # a crash is a finding, not the end of the run
            crashes += 1
            results[str(path.relative_to(corpus))] = []
            print(f"CRASH {path}: {exc!r}", file=sys.stderr)

    def ours(row: dict[str, str]):
        found = results.get(row["file"], [])
        hint = row["recipient_hint"].lower()
        for recipient in found:
            if hint and recipient.address == hint:
                return recipient
        index = int(row["index"]) - 1
        return found[index] if index < len(found) else (found[0] if found else None)

    matrix: dict[str, Counter] = defaultdict(Counter)
    hard_total = hard_hit = soft_total = soft_as_hard = 0
    recipient_total = recipient_hit = 0
    complaint_total = complaint_hit = vacation_total = vacation_hit = 0
    for row in rows:
        mine = ours(row)
        got = mine.kind if mine else "none"
        want = expected_kind(row)
        matrix[want][got] += 1
        if row["hard_or_soft"] == "hard":
            hard_total += 1
            hard_hit += got == rules.HARD
        elif row["hard_or_soft"] == "soft":
            soft_total += 1
            soft_as_hard += got == rules.HARD
        elif row["hard_or_soft"] == "feedback":
            complaint_total += 1
            complaint_hit += got == rules.COMPLAINT
        elif row["hard_or_soft"] == "vacation":
            vacation_total += 1
            vacation_hit += got == rules.AUTO_REPLY
        hint = row["recipient_hint"]
        if hint and "weak" not in row["recipient_hint_src"] and not hint.startswith("AMBIGUOUS"):
            recipient_total += 1
            addresses = {r.address for r in results.get(row["file"], [])}
            recipient_hit += hint.lower() in addresses
    false_positives = sum(1 for name, found in results.items() if name.startswith("maildir/not/") and found)

    # Speed: parse every file over and over for at least `seconds`.
    blobs = [p.read_bytes() for p in files]
    parsed = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for blob in blobs:
            try:
                classify(blob)
            except Exception:  # counted above
                pass
            parsed += 1
    elapsed = time.perf_counter() - started
    reference = 0
    started = time.perf_counter()
    while time.perf_counter() - started < max(seconds / 2, 0.01):
        for blob in blobs:
            email.message_from_bytes(blob, policy=email.policy.compat32)
            reference += 1
    reference_elapsed = time.perf_counter() - started

    kinds = sorted(matrix)
    print("per-kind agreement with sisimai (rows):")
    for want in kinds:
        total = sum(matrix[want].values())
        print(f"  {want:<11} {matrix[want][want]:>4}/{total:<4} {matrix[want][want] / total:.3f}")
    if confusion:
        columns = sorted({got for counts in matrix.values() for got in counts})
        print("confusion (rows: sisimai mapped to our kinds; columns: ours)")
        print(" " * 12 + "".join(f"{c:>11}" for c in columns))
        for want in kinds:
            print(f"{want:<12}" + "".join(f"{matrix[want][c]:>11}" for c in columns))
    agreement = {want: round(matrix[want][want] / sum(matrix[want].values()), 4) for want in kinds}
    return {
        "files": len(files),
        "rows": len(rows),
        "crashes": crashes,
        "hard_recall": round(hard_hit / hard_total, 4) if hard_total else 0.0,
        "false_hard": round(soft_as_hard / soft_total, 4) if soft_total else 0.0,
        "recipient_match": round(recipient_hit / recipient_total, 4) if recipient_total else 0.0,
        "complaint_recall": round(complaint_hit / complaint_total, 4) if complaint_total else 0.0,
        "auto_reply_recall": round(vacation_hit / vacation_total, 4) if vacation_total else 0.0,
        "false_positives": false_positives,
        "agreement": agreement,
        "parsed": parsed,
        "parse_per_s": round(parsed / elapsed, 1),
        "reference_parse_per_s": round(reference / reference_elapsed, 1),
        "ratio": round((parsed / elapsed) / (reference / reference_elapsed), 3),
    }


def apply_rate(
    count: int,
    seconds: float,
    batch: int,
    clients: int,
    listener_corpus: Path | None = None,
    pipe_clients: int = 0,
) -> dict[str, object]:
    """`count` token-attributed DSNs through the batch path (repeated for at least `seconds`),
    then through the one-message path for a fifth of that time. `listener_corpus`: the listener
    is fed the corpus's real bounces (each with one of the tokens) instead of the small DSNs."""
    sys.path.insert(0, str(REPO / "bench"))
    from benchdb import own_database

    with own_database("bounces"):
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from contacts.models import Contact
        from delivery.bounces.services import Inbound, bounce_process, bounces_process
        from delivery.models import Mailing, Message
        from delivery.verp import verp_address

        contacts = Contact.objects.bulk_create(Contact(email=f"user{i}@example.com") for i in range(count))
        mailing = Mailing.objects.create(
            name="bench", send_group="bench", from_email="news@example.net", subject="s", compiled={}
        )
        messages = Message.objects.bulk_create(
            Message(mailing=mailing, send_group="bench", contact=c, email=c.email, state="sent")
            for c in contacts
        )
        template = (
            "From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail Returned to Sender\n"
            'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
            "--B\nContent-Type: text/plain\n\nSorry.\n\n--B\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; {email}\nAction: failed\n"
            "Status: {status}\nDiagnostic-Code: smtp; {diag}\n\n--B--\n"
        )
        kinds = [
            ("4.2.2", "452 4.2.2 Mailbox full"),
            ("5.7.1", "554 5.7.1 blocked using zen.spamhaus.org"),
            ("5.1.1", "550 5.1.1 User unknown"),
        ]
        jobs = []
        for index, message in enumerate(messages):
            status, diag = kinds[index % len(kinds)]
            raw = template.format(email=message.email, status=status, diag=diag).encode()
            jobs.append((raw, verp_address(message.pk)))
        items = [Inbound(raw=raw, source="mailbox", envelope_to=(envelope,)) for raw, envelope in jobs]
        done = 0
        started = time.perf_counter()
        while True:
            for start in range(0, len(items), batch):
                done += len(bounces_process(items[start : start + batch]))
            if time.perf_counter() - started >= seconds:
                break
        elapsed = time.perf_counter() - started
        single = 0
        single_started = time.perf_counter()
        for raw, envelope in jobs:
            bounce_process(raw, source="smtp", envelope_to=[envelope])
            single += 1
            if time.perf_counter() - single_started >= seconds / 5:
                break
        single_elapsed = time.perf_counter() - single_started
        if listener_corpus is not None:
            # real reports: larger, every MTA's format, a boundary of their own (not err/, not/, nor mac/'s bare CRs),
            # with CRLF line ends as an MTA sends them (bsd/'s bare LFs made each a single line over
            # SMTP's limit: most were refused with 500 while their CPU counted against the rest)
            real = [
                path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                for path in sorted((listener_corpus / "maildir").rglob("*"))
                if path.is_file() and path.parent.name not in ("err", "not", "mac")
            ]
            jobs = [(real[index % len(real)], envelope) for index, (_, envelope) in enumerate(jobs)]
        listener = listener_rate(jobs, seconds, clients, pipe_clients)
        return {
            "applied": done,
            "batch": batch,
            "bounces_per_s": round(done / elapsed, 1),
            "apply_ms": round(1000 * elapsed / done, 3),
            "single_applied": single,
            "single_bounces_per_s": round(single / single_elapsed, 1),
            "batch_ratio": round((done / elapsed) / (single / single_elapsed), 2),
            **listener,
            "listener_ratio": round(listener["listener_bounces_per_s"] / (single / single_elapsed), 2),
        }


SENDERS_ADDRESS = "127.0.0.2"  # Linux answers the whole of 127.0.0.0/8 on the loopback


def _cpu_seconds(pid: int) -> float:
    """user + system CPU of one process so far, 0 when it is gone."""
    from cpuwatch import cpu_seconds

    return cpu_seconds(pid) or 0.0


def _process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (the listener's classifier processes)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])  # noqa: SIM115
            except OSError:
                continue
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _backend_pids() -> list[int]:
    """PostgreSQL backends on this benchmark's database (the listener's, ours), when local."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


def _in_threads(target: Callable[..., None], calls: list[tuple]) -> float:
    """Seconds for `target` to run once per argument tuple, each call in a thread of its own, all at once."""
    threads = [threading.Thread(target=target, args=args) for args in calls]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def listener_rate(
    jobs: list[tuple[bytes, str]], seconds: float, clients: int, pipe_clients: int = 0
) -> dict[str, object]:
    """`manage.py bounce_server` in a process of its own, fed by `clients` concurrent SMTP
    sessions as several MTAs would: accepted messages per second, each committed before its 250.

    CPU per bounce (user + system, from /proc) of the listener with its classifier processes,
    of the sending clients (this process) and of PostgreSQL's backends on this database: their
    sum bounds the rate on this machine at `cores / cpu` whatever else runs beside it."""
    import smtplib
    import subprocess

    from loopback import free_port, wait_for_port

    port = free_port()
    from django.conf import settings

    env = {
        **os.environ,
        "BOUNCE_DOMAIN": "bounce.example.net",
        "BOUNCE_MAX_PER_MINUTE_PER_CLIENT": "1000000000",
        "BOUNCE_FLOOD_EXEMPT_PEERS": "127.0.0.1",  # the pipe's handoff comes from the local MTA
        # as deployed: DEBUG off (no SQL capture); the same key, so the VERP tokens verify
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
    }
    server = subprocess.Popen(
        [sys.executable, "manage.py", "bounce_server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, seconds=60)
        accepted = [0] * clients
        refused = [0] * clients  # answered, but not with 250 (their CPU still counts)
        deadline = 0.0

        def client(slot: int, count: int | None) -> None:
            # From another loopback address: the flood limit counts these senders as it would
            # remote MTAs; only the pipe's handoff (from 127.0.0.1, the local MTA) is exempt.
            with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=(SENDERS_ADDRESS, 0)) as session:
                session.ehlo("mx.example.org")
                index = slot
                sent = 0
                while (count is None and time.perf_counter() < deadline) or (
                    count is not None and sent < count
                ):
                    raw, envelope = jobs[index % len(jobs)]
                    session.mail("")
                    session.rcpt(envelope.rpartition("@")[0] + "@bounce.example.net")
                    ok = session.data(raw)[0] == 250
                    if count is None:
                        accepted[slot] += ok
                        refused[slot] += not ok
                    index += clients
                    sent += 1

        # Warm up (database connection, classifier processes) outside the measured window.
        client(0, 3)
        listener_pids = _process_tree(server.pid)
        backends = _backend_pids()
        before = {pid: _cpu_seconds(pid) for pid in listener_pids + backends}
        client_before = time.process_time()
        deadline = time.perf_counter() + max(seconds, 0.5)
        elapsed = _in_threads(client, [(slot, None) for slot in range(clients)])
        client_cpu = time.process_time() - client_before
        listener_pids = _process_tree(server.pid)
        backends = _backend_pids()
        listener_cpu = sum(_cpu_seconds(pid) - before.get(pid, 0.0) for pid in listener_pids)
        database_cpu = sum(_cpu_seconds(pid) - before.get(pid, 0.0) for pid in backends)
        pipe = pipe_rate(jobs, seconds, pipe_clients, port, env, server.pid) if pipe_clients else {}
    finally:
        server.terminate()
        server.wait(30)
    done = max(sum(accepted), 1)
    total = listener_cpu + client_cpu + database_cpu
    cores = os.cpu_count() or 1
    return {
        "listener_clients": clients,
        "listener_bytes_per_message": round(sum(len(raw) for raw, _ in jobs) / len(jobs)),
        "listener_accepted": sum(accepted),
        "listener_refused": sum(refused),
        "listener_bounces_per_s": round(sum(accepted) / elapsed, 1),
        "listener_processes": len(listener_pids),
        "listener_cpu_ms_per_bounce": round(1000 * listener_cpu / done, 3),
        "client_cpu_ms_per_bounce": round(1000 * client_cpu / done, 3),
        "database_cpu_ms_per_bounce": round(1000 * database_cpu / done, 3),
        "total_cpu_ms_per_bounce": round(1000 * total / done, 3),
        "cores": cores,
        # what the measured CPU per bounce allows on this machine's cores with nothing else running
        "cpu_bound_bounces_per_s": round(cores * done / total, 1) if total else 0.0,
        "load_1min": round(os.getloadavg()[0], 2),
        **pipe,
    }


def pipe_rate(
    jobs: list[tuple[bytes, str]],
    seconds: float,
    clients: int,
    port: int,
    env: dict[str, str],
    server_pid: int,
) -> dict[str, object]:
    """The MTA's pipe under concurrency, as Postfix runs it: `clients` at a time, a process per
    message. `python -m delivery.bounces.pipe` hands each to the running listener (its group
    commit); the reference is the old way, `manage.py process_bounce --no-handoff` (Django
    started and one transaction per message), with as many at a time as there are cores (it is
    CPU-bound: more only queue). CPU per bounce: the pipe processes, the listener and PostgreSQL."""
    import resource
    import subprocess

    pipe_env = {**env, "BOUNCE_SMTP_HOST": "127.0.0.1", "BOUNCE_SMTP_PORT": str(port)}

    def run(command: list[str], clients: int, seconds: float) -> tuple[int, float, float]:
        stored = [0] * clients
        deadline = time.perf_counter() + seconds

        def client(slot: int) -> None:
            index = slot
            while True:
                raw, envelope = jobs[index % len(jobs)]
                rcpt = envelope.rpartition("@")[0] + "@bounce.example.net"
                done = subprocess.run(
                    [*command, "--recipient", rcpt], cwd=REPO, env=pipe_env, input=raw, capture_output=True
                )
                stored[slot] += done.returncode == 0
                index += clients
                if time.perf_counter() >= deadline:
                    return

        pids = _process_tree(server_pid) + _backend_pids()
        before = {pid: _cpu_seconds(pid) for pid in pids}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        elapsed = _in_threads(client, [(slot,) for slot in range(clients)])
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        pids = _process_tree(server_pid) + _backend_pids()
        cpu = sum(_cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids)
        cpu += (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
        return sum(stored), elapsed, cpu

    handed, handed_s, handed_cpu = run([sys.executable, "-m", "delivery.bounces.pipe"], clients, seconds)
    local_clients = os.cpu_count() or 1
    local, local_s, local_cpu = run(
        [sys.executable, "manage.py", "process_bounce", "--no-handoff"], local_clients, min(seconds, 3.0)
    )
    return {
        "pipe_clients": clients,
        "pipe_stored": handed,
        "pipe_bounces_per_s": round(handed / handed_s, 1),
        "pipe_cpu_ms_per_bounce": round(1000 * handed_cpu / max(handed, 1), 3),
        "pipe_local_clients": local_clients,
        "pipe_local_stored": local,
        "pipe_local_bounces_per_s": round(local / local_s, 1),
        "pipe_local_cpu_ms_per_bounce": round(1000 * local_cpu / max(local, 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seconds", type=float, default=5.0, help="time spent measuring speed")
    parser.add_argument("--confusion", action="store_true", help="print the confusion matrix")
    parser.add_argument("--apply", type=int, default=2000, help="bounces to apply on a database (0: skip)")
    parser.add_argument("--batch", type=int, default=500, help="bounces per transaction on the batch path")
    parser.add_argument(
        "--listener-clients", type=int, default=8, help="concurrent SMTP sessions feeding bounce_server"
    )
    parser.add_argument(
        "--listener-corpus",
        action="store_true",
        help="feed the listener the corpus's bounces (each with a token) instead of small generated DSNs",
    )
    parser.add_argument(
        "--pipe-clients",
        type=int,
        default=20,
        help="MTA pipe processes at a time handing messages to the listener (0: skip the pipe)",
    )
    args = parser.parse_args()
    if not (args.corpus / "expected.tsv").is_file():
        parser.error(f"--corpus: no expected.tsv in {args.corpus}")
    if args.apply < 0 or args.seconds < 0:
        parser.error("--apply and --seconds must not be negative")
    if args.pipe_clients < 0:
        parser.error("--pipe-clients must not be negative")
    if args.batch < 1 or args.listener_clients < 1:
        parser.error("--batch and --listener-clients must be at least 1")
    figures = run(args.corpus, args.seconds, args.confusion)
    if args.apply:
        figures.update(
            apply_rate(
                args.apply,
                args.seconds,
                args.batch,
                args.listener_clients,
                args.corpus if args.listener_corpus else None,
                args.pipe_clients,
            )
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
