"""Scale curves: python bench/scale.py --contacts 100000,1000000,10000000 [--ledger-rows N,...].

One database of its own grows through the sizes, smallest first. At each size it holds N
contacts (95% on one list, confirmed; attributes as bench/import_contacts.py makes them) and a
ledger of N Messages (or --ledger-rows) in finished Mailings of up to 100,000 each, with ~1.3
events per Message (sent; 20% opened, 5% clicked, 2% bounced). Filling is setup, not measured:
INSERT ... SELECT with the table's plain indexes dropped and rebuilt, then VACUUM ANALYZE, as
autovacuum would have by the time anyone looks. The same three objects are measured at every
size, so what changes is only the data around them:
- contacts_page_ms: the contacts page (first page, a middle page, a search), per request;
- api_list_p95_ms: GET /api/v1/contacts/ pages of 100, walking `next` from the newest and middle;
- segment_count_ms: bench/import_contacts.py's three-condition segment (score > 50, on the list,
  first name starts with "a") counted by contacts.selectors.segment_count;
- segment_count_cpu_ms: the same count's backend CPU with parallel workers off (one process does all
  of it, so the figure does not move with the load as wall time does); segment_rows_cpu_ms, the
  same without its list condition (the difference is what the list's index probes cost), and
  contact_scan_cpu_ms beside them: the contact table read once with one per-row test on a name,
  which every plan that reads the table's rows pays (null when the server is not on this host);
- claim_batch_ms: delivery.ledger.claim of one batch (DELIVERY_BATCH_SIZE) from a sending Mailing
  of --queued Messages, a new one at each size (each batch then left in a final state, skipped);
- progress_page_ms: that Mailing's progress fragment; report_page_ms: the report page of a sent
  campaign of --campaign recipients (its counts grow with its own rows, not the table's), and
  report_page_cpu_ms, that page's CPU per request (Django here plus its backend, parallel off);
- prune_max_lock_ms: delivery.ledger.prune of one old Mailing (--campaign Messages past the
  retention) while another connection claims and releases batches: the longest transaction of the
  prune (how long any lock it takes is held), with claim_max_during_prune_ms beside it and
  sender_lock_wait_max_ms, the longest the sender was seen waiting on a lock (pg_stat_activity
  sampled every ~2 ms).
Timings are medians of --repeat runs, in wall ms; `load` is the 1-minute load average.
--explain prints EXPLAIN (ANALYZE, BUFFERS) of the segment count and the claim at each size.

Runs on posthorn_bench_scale_<pid> on the server DATABASE_URL names (or the embedded one) and
drops it afterwards (--keep leaves it, for EXPLAIN work). --database NAME grows and keeps that
database instead, and measures one that already holds contacts again without filling anew: a
size it already has (or exceeds) is only measured, so a ten-million build is made once and
measured as often as needed (`--contacts 10000000 --database NAME`). One JSON line per size; the last line
one JSON object with every size and the growth from the first size to the last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import named_database, own_database  # noqa: E402
from cpuwatch import cpu_seconds  # noqa: E402
from measure import backend_pid, median_ms, three_condition_segment  # noqa: E402

FIRST = ["Ann", "Bob", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea"]
LAST = ["Berg", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvat", "Ivanova", "Jensen"]
CITIES = ["Berlin", "Lyon", "Porto", "Oslo", "Turin", "Ghent", "Cork", "Brno", "Graz", "Malmö"]
DOMAINS = ["example.com", "example.net", "example.org", "mail.test", "post.test"]
MAILING_SIZE = 100_000
CHUNK = 1_000_000
# Bytes per contact and per Message with its events and indexes, measured at 1M (with slack).
BYTES_PER_ROW = 1_600


def sizes(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated whole numbers") from None
    if not values or min(values) < 100:
        raise argparse.ArgumentTypeError("every size must be at least 100")
    return values


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=sizes, default=sizes("100000,1000000"))
    parser.add_argument("--ledger-rows", type=sizes, default=None, help="per size (default: as --contacts)")
    parser.add_argument("--campaign", type=int, default=50_000, help="report campaign's recipients")
    parser.add_argument("--queued", type=int, default=50_000, help="the sending Mailing's queued Messages")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pages", type=int, default=20, help="API pages per size")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the database (prints its name)")
    parser.add_argument("--database", help="grow (or reuse) this database and keep it")
    args = parser.parse_args()
    if args.ledger_rows is None:
        args.ledger_rows = list(args.contacts)
    if len(args.ledger_rows) != len(args.contacts):
        parser.error("--ledger-rows needs one value per --contacts size")
    if args.contacts != sorted(args.contacts) or args.ledger_rows != sorted(args.ledger_rows):
        parser.error("sizes grow: give them smallest first")
    args.campaign = min(args.campaign, args.contacts[0])
    args.queued = min(args.queued, args.contacts[0])
    if min(args.ledger_rows) < args.campaign + args.queued:
        parser.error("--ledger-rows must hold the report campaign and the sending Mailing")
    need = (args.contacts[-1] + args.ledger_rows[-1]) * BYTES_PER_ROW
    free = shutil.disk_usage("/").free
    print(f"disk: {free / 1e9:.1f} GB free, about {need / 1e9:.1f} GB needed at the largest size")
    if need > free * 0.8:
        parser.error(f"not enough free disk for {args.contacts[-1]:,} contacts: {free / 1e9:.1f} GB free")

    if args.database:
        with named_database(args.database):
            _environment()
            return run(args)
    with own_database("scale") as name:
        _environment()
        code = run(args)
        if args.keep:
            print(f"kept database {name}; drop it yourself")
            from django.db import connections

            connections.close_all()
            os._exit(code)  # skip own_database's drop
        return code


def _environment() -> None:
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ["CACHE_KEY_PREFIX"] = f"posthorn-bench-scale-{os.getpid()}"
    os.environ["DEBUG"] = "false"  # as deployed: no SQL capture
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))


# --- filling (setup, not measured) ---


def _cursor():
    from django.db import connection

    return connection.cursor()


def _plain_indexes(table: str) -> list[str]:
    """CREATE INDEX statements of the table's indexes that back no constraint."""
    with _cursor() as cursor:
        cursor.execute(
            """
            SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
            WHERE i.indrelid = %s::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
            """,
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


def _bulk(table: str, statements: list[tuple[str, list]], *, rebuild: bool = True) -> None:
    """Run the inserts with the table's plain indexes dropped, then build them again (faster by far
    for millions of rows; `rebuild=False` for a few thousand into a big table, which keeps them)."""
    if not statements:
        return
    indexes = _plain_indexes(table) if rebuild else []
    with _cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for definition in indexes:
            cursor.execute("DROP INDEX " + definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0])
        try:
            for sql, params in statements:
                cursor.execute(sql, params)
        finally:
            # Even when an insert failed (a --database build stopped by the server, say "out of
            # shared memory" while other sessions held its lock table): a kept database without
            # its indexes would be measured wrong on the next run, not refilled.
            for definition in indexes:
                cursor.execute(definition)
        cursor.execute(f"VACUUM ANALYZE {table}")


def fill_contacts(target: int, list_id: int) -> None:
    with _cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM contacts_contact")
        have = cursor.fetchone()[0]
    statements = []
    for low in range(have + 1, target + 1, CHUNK):
        high = min(target, low + CHUNK - 1)
        statements.append(
            (
                """
                INSERT INTO contacts_contact (id, email, first_name, last_name, attributes, language,
                    timezone, status, consent_source, consent_detail, bounce_count, soft_bounce_count,
                    created_at, updated_at)
                SELECT g, 'user' || g || '@' || (%s::text[])[1 + g %% 5],
                    (%s::text[])[1 + floor(random() * 12)::int], (%s::text[])[1 + floor(random() * 9)::int],
                    jsonb_build_object('score', floor(random() * 100)::int,
                        'city', (%s::text[])[1 + floor(random() * 10)::int],
                        'signup_date', (date '2010-01-01' + floor(random() * 5800)::int)::text,
                        'vip', random() < 0.5, 'plan', (ARRAY['free','pro','team','enterprise'])[1 + g %% 4]),
                    '', '', CASE WHEN g %% 50 = 0 THEN 'unsubscribed' WHEN g %% 97 = 0 THEN 'bounced'
                                 ELSE 'active' END,
                    'import', '', 0, 0, now() - (g %% 1000) * interval '1 hour', now()
                FROM generate_series(%s::bigint, %s::bigint) AS g
                """,
                [DOMAINS, FIRST, LAST, CITIES, low, high],
            )
        )
    _bulk("contacts_contact", statements)
    with _cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('contacts_contact', 'id'), (SELECT max(id) FROM contacts_contact))"
        )
    subscriptions = [
        (
            """
            INSERT INTO contacts_subscription (contact_id, mailing_list_id, status, source, created_at,
                confirmed_at, updated_at)
            SELECT g, %s, 'confirmed', 'import', now(), now(), now()
            FROM generate_series(%s::bigint, %s::bigint) AS g WHERE g %% 20 <> 7
            """,
            [list_id, low, min(target, low + CHUNK - 1)],
        )
        for low in range(have + 1, target + 1, CHUNK)
    ]
    _bulk("contacts_subscription", subscriptions)


def _mailing(name: str, state: str, *, days_ago: int = 0):
    from django.utils import timezone

    from delivery.models import Mailing

    at = timezone.now() - dt.timedelta(days=days_ago)
    mailing = Mailing.objects.create(
        name=name, send_group=name, from_email="news@example.com", subject=name, compiled={}, state=state
    )
    Mailing.objects.filter(pk=mailing.pk).update(
        created_at=at, planned_at=at, started_at=at, finished_at=None if state == "sending" else at
    )
    return mailing


def _messages_sql(
    mailing_id: int, send_group: str, count: int, state: str, days_ago: int
) -> tuple[str, list]:
    # Recipients are contacts 1..count: one Message per (send group, contact), as a plan makes.
    return (
        """
        INSERT INTO delivery_message (mailing_id, send_group, contact_id, email, state, attempts,
            hold_reason, smtp_reply, bounce_kind, sent_at, created_at)
        SELECT %s, %s, g, 'user' || g || '@' || (%s::text[])[1 + g %% 5], %s,
            CASE WHEN %s = 'queued' THEN 0 ELSE 1 END, '', CASE WHEN %s = 'queued' THEN '' ELSE '250 ok' END,
            CASE WHEN %s <> 'queued' AND g %% 50 = 3 THEN (ARRAY['hard','soft','block'])[1 + g %% 3] ELSE '' END,
            CASE WHEN %s = 'queued' THEN NULL ELSE now() - %s * interval '1 day' + g * interval '10 ms' END,
            now() - %s * interval '1 day'
        FROM generate_series(1, %s) AS g
        """,
        [mailing_id, send_group, DOMAINS, state, state, state, state, state, days_ago, days_ago, count],
    )


def _events_sql(mailing_ids: list[int]) -> list[tuple[str, list]]:
    """Sent for every Message; opened for 20%, clicked for 5% (one machine hit in ten), bounced 2%."""
    common = "FROM delivery_message m WHERE m.mailing_id = ANY(%s) AND m.state = 'sent'"
    kinds = [
        ("sent", "'{}'::jsonb", "TRUE", "interval '0 s'"),
        (
            "opened",
            "CASE WHEN m.id %% 10 = 0 THEN '{\"machine\": \"proxy\"}'::jsonb ELSE '{}'::jsonb END",
            "m.id %% 5 = 1",
            "(m.id %% 7200) * interval '1 minute'",
        ),
        (
            "clicked",
            "jsonb_build_object('url', 'https://example.com/p/' || (m.id %% 12))"
            " || CASE WHEN m.id %% 10 = 0 THEN '{\"machine\": \"scanner\"}'::jsonb ELSE '{}'::jsonb END",
            "m.id %% 20 = 1",
            "(m.id %% 7200) * interval '1 minute' + interval '30 seconds'",
        ),
        (
            "bounced",
            '\'{"diagnostic": "550 5.1.1 user unknown"}\'::jsonb',
            "m.bounce_kind <> ''",
            "interval '5 minutes'",
        ),
    ]
    return [
        (
            f"INSERT INTO delivery_messageevent (message_id, mailing_id, kind, at, data) "  # noqa: S608
            f"SELECT m.id, m.mailing_id, '{kind}', m.sent_at + {delay}, {data} {common} AND {where}",
            [mailing_ids],
        )
        for kind, data, where, delay in kinds
    ]


def fill_ledger(target: int, state: dict) -> None:
    """Finished Mailings of up to MAILING_SIZE Messages (and their events) until `target` Messages."""
    from delivery.models import Message

    have = Message.objects.count()
    statements, ids = [], []
    n = state.setdefault("mailings", 0)
    while have < target:
        count = min(MAILING_SIZE, target - have, state["contacts"])
        n += 1
        # Spread over the last year, all inside the retention (the old one is made apart).
        mailing = _mailing(f"filler-{n}", "done", days_ago=1 + (n * 37) % 360)
        statements.append(_messages_sql(mailing.pk, mailing.send_group, count, "sent", 1 + (n * 37) % 360))
        ids.append(mailing.pk)
        have += count
    state["mailings"] = n
    if statements:
        _bulk("delivery_message", statements)
        _bulk("delivery_messageevent", _events_sql(ids))


def setup_fixed(args: argparse.Namespace, state: dict) -> None:
    """The sent campaign whose report is measured at every size."""
    from campaigns.models import Campaign

    report = _mailing("report", "done", days_ago=2)
    _bulk("delivery_message", [_messages_sql(report.pk, report.send_group, args.campaign, "sent", 2)])
    _bulk("delivery_messageevent", _events_sql([report.pk]))
    campaign = Campaign.objects.create(name="report", state="sent", mailing=report)
    state.update(report=report.pk, campaign=campaign.pk)


def _resume(state: dict) -> None:
    """What an earlier run left in a --database: its filler Mailings, the report campaign."""
    from campaigns.models import Campaign
    from delivery.models import Mailing

    state["mailings"] = Mailing.objects.filter(name__startswith="filler-").count()
    state["sending_n"] = Mailing.objects.filter(name__startswith="sending-").count()
    state["old"] = Mailing.objects.filter(name__startswith="old-").count()
    campaign = Campaign.objects.filter(name="report", state="sent").order_by("pk").first()
    if campaign is not None:
        state.update(report=campaign.mailing_id, campaign=campaign.pk)


def add_sending(args: argparse.Namespace, state: dict) -> None:
    """A Mailing being sent, newest in the ledger as a real one is: --queued Messages waiting."""
    n = state["sending_n"] = state.get("sending_n", 0) + 1
    sending = _mailing(f"sending-{n}", "sending")
    _bulk(
        "delivery_message",
        [_messages_sql(sending.pk, sending.send_group, args.queued, "queued", 0)],
        rebuild=False,
    )
    state["sending"] = sending.pk


def add_old_mailing(args: argparse.Namespace, state: dict) -> int:
    """One finished Mailing past the retention, for the prune to remove."""
    n = state["old"] = state.get("old", 0) + 1
    old = _mailing(f"old-{n}", "done", days_ago=500)
    _bulk(
        "delivery_message", [_messages_sql(old.pk, old.send_group, args.campaign, "sent", 500)], rebuild=False
    )
    _bulk("delivery_messageevent", _events_sql([old.pk]), rebuild=False)
    return old.pk


# --- measuring ---

# What any plan that reads the contacts' rows pays: every page, one cheap test per row on a column
# that no index covers (the segment's name test reads the same column).
CONTACT_SCAN_SQL = "SELECT count(*) FROM contacts_contact c WHERE octet_length(c.first_name) < 0"


def without_lists(rules: dict) -> dict:
    """The same segment without its list conditions: what the count costs with the list's index
    probes left out (segment_count_cpu_ms less this is what they add; contact_scan_cpu_ms is what
    reading the rows costs before any of its tests)."""
    groups = [
        {**group, "conditions": [cond for cond in group["conditions"] if cond["field"] != "list"]}
        for group in rules["groups"]
    ]
    return {**rules, "groups": groups}


def backend_cpu_ms(sql: str, params: list, repeat: int) -> float | None:
    """CPU ms of this connection's server process per run of `sql`, parallel workers off so that the
    whole query runs in that one process. None when the server runs on another host."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        pid = backend_pid()
        cursor.execute(sql, params)  # warm: the plan and the caches, as the timed runs find them
        cursor.fetchall()
        before = cpu_seconds(pid)
        if before is None:
            return None
        for _ in range(repeat):
            cursor.execute(sql, params)
            cursor.fetchall()
        after = cpu_seconds(pid)
    return None if after is None else (after - before) * 1000 / repeat


def explain(sql: str, params: list, *, rollback: bool = False, jit: bool = False) -> str:
    from django.db import connection, transaction

    class Rollback(Exception):
        pass

    lines: list[str] = []
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if jit:  # as before the platform turned it off: what JIT adds to the same plan
                cursor.execute("SET LOCAL jit = on")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            lines = [row[0] for row in cursor.fetchall()]
            if rollback:
                raise Rollback
    except Rollback:
        pass
    return "\n".join(lines)


def measure(args: argparse.Namespace, state: dict, size: int, ledger_rows: int) -> dict:
    from django.conf import settings
    from django.db import connection, connections
    from django.test import Client

    from contacts import selectors as contact_selectors
    from delivery import ledger
    from mailplatform.api.pagination import encode_keyset_cursor

    repeat = args.repeat
    client = state["client"]
    middle = size // 2

    def contacts_page() -> None:
        for url in ("/contacts/", f"/contacts/?after={middle}", "/contacts/?q=user12345"):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

    contacts_page()
    contacts_page_ms = median_ms(contacts_page, repeat) / 3

    api = Client(HTTP_AUTHORIZATION=f"Bearer {state['key']}")
    api_ms: list[float] = []
    for start_url in (
        "/api/v1/contacts/?limit=100",
        f"/api/v1/contacts/?limit=100&cursor={encode_keyset_cursor('after', middle)}",
    ):
        url = start_url
        api.get(url)
        for _ in range(max(1, args.pages // 2)):
            begin = time.perf_counter()
            response = api.get(url)
            api_ms.append((time.perf_counter() - begin) * 1000)
            assert response.status_code == 200, (url, response.status_code)
            url = response.json()["next"]
            if not url:
                break
    api_list_p95_ms = percentile(api_ms, 0.95)

    rules = three_condition_segment(state["list"])
    matched = contact_selectors.segment_count(rules)
    segment_count_ms = median_ms(lambda: contact_selectors.segment_count(rules), repeat)
    from contacts.segments import compile_rules

    condition, segment_params = compile_rules(rules)
    segment_sql = f"SELECT count(*) FROM contacts_contact c WHERE {condition}"  # noqa: S608
    segment_count_cpu_ms = backend_cpu_ms(segment_sql, segment_params, repeat)
    rows_condition, rows_params = compile_rules(without_lists(rules))
    segment_rows_cpu_ms = backend_cpu_ms(
        f"SELECT count(*) FROM contacts_contact c WHERE {rows_condition}",  # noqa: S608
        rows_params,
        repeat,
    )
    contact_scan_cpu_ms = backend_cpu_ms(CONTACT_SCAN_SQL, [], repeat)

    claims = max(repeat, 10)
    # The engine's batch, smaller only where --queued could not feed the claims (a tiny run).
    batch = max(1, min(settings.DELIVERY_BATCH_SIZE, args.queued // (2 * claims)))
    relay = state["relay"]
    claim_times: list[float] = []
    for _ in range(claims):
        begin = time.perf_counter()
        claimed = ledger.claim(state["sending"], relay, batch)
        claim_times.append((time.perf_counter() - begin) * 1000)
        assert claimed, "the sending Mailing ran dry"
        # Done with, as a send would leave them (not back in the queue, to be claimed again).
        ledger.release([c.id for c in claimed], "skipped")
    claim_batch_ms = statistics.median(claim_times)

    progress_url = f"/delivery/mailings/{state['sending']}/progress/"
    report_url = f"/campaigns/{state['campaign']}/report/"
    for url in (progress_url, report_url):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    progress_page_ms = median_ms(lambda: client.get(progress_url), repeat)
    report_page_ms = median_ms(lambda: client.get(report_url), repeat)
    report_page_cpu_ms = page_cpu_ms(client, report_url, repeat)

    if args.explain:
        print(f"--- segment count at {size:,} contacts")
        print(explain(segment_sql, segment_params))
        print(f"--- segment count at {size:,} contacts, JIT on")
        print(explain(segment_sql, segment_params, jit=True))
        print(f"--- claim at {ledger_rows:,} ledger rows")
        with connection.cursor() as cursor:
            cursor.execute("SELECT min(id) FROM delivery_message WHERE mailing_id = %s", [state["sending"]])
        # The engine's own statement: the plan shown is the one it runs.
        print(explain(ledger.CLAIM_SQL, ledger.claim_params(state["sending"], relay, batch), rollback=True))

    # The prune removes one old Mailing while another connection sends (claims batches and is
    # done with them); a third samples whether that sender waits on a lock, and for how long.
    old = add_old_mailing(args, state)
    stop = threading.Event()
    during: list[float] = []
    sender_pid: list[int] = []
    ready = threading.Event()

    def sender() -> None:
        try:
            sender_pid.append(backend_pid())
            ready.set()
            # Claims until the prune is over, at least once: at a tiny size the prune can be done
            # before this thread would first have looked at `stop`.
            while True:
                begin = time.perf_counter()
                claimed = ledger.claim(state["sending"], relay, batch)
                during.append((time.perf_counter() - begin) * 1000)
                ledger.release([c.id for c in claimed], "skipped")
                if not claimed or stop.is_set():
                    break
        finally:
            ready.set()
            connections.close_all()

    waits: list[float] = []

    def sampler() -> None:
        ready.wait()
        waiting_since = None
        try:
            with connection.cursor() as cursor:
                while not stop.is_set() and sender_pid:
                    cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", sender_pid)
                    row = cursor.fetchone()
                    now = time.perf_counter()
                    if row and row[0] == "Lock":
                        waiting_since = waiting_since or now
                    elif waiting_since is not None:
                        waits.append((now - waiting_since) * 1000)
                        waiting_since = None
                    time.sleep(0.002)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender), threading.Thread(target=sampler)]
    for thread in threads:
        thread.start()
    transactions: list[float] = []
    ready.wait()  # the sender has its connection: the prune starts beside its first claim
    begin = time.perf_counter()
    pruned = ledger.prune(days=settings.DELIVERY_RETENTION_DAYS, on_batch=transactions.append)
    prune_s = time.perf_counter() - begin
    stop.set()
    for thread in threads:
        thread.join()
    from delivery.models import Mailing

    assert not Mailing.objects.filter(pk=old).exists(), "the old Mailing was not pruned"

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM delivery_messageevent")
        events = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM contacts_contact")
        held = cursor.fetchone()[0]
    figures = {
        "size": size,
        # More than `size` where --database held more already (contact ids are 1..N).
        "contacts_held": held,
        "ledger_rows": ledger_rows,
        "events": events,
        "load": load(),
        "contacts_page_ms": round(contacts_page_ms, 2),
        "api_list_p95_ms": round(api_list_p95_ms, 2),
        "segment_count_ms": round(segment_count_ms, 2),
        "segment_matched": matched,
        "segment_count_cpu_ms": _rounded(segment_count_cpu_ms),
        "segment_rows_cpu_ms": _rounded(segment_rows_cpu_ms),
        "contact_scan_cpu_ms": _rounded(contact_scan_cpu_ms),
        "claim_batch_ms": round(claim_batch_ms, 2),
        "claim_batch": batch,
        "progress_page_ms": round(progress_page_ms, 2),
        "report_page_ms": round(report_page_ms, 2),
        "report_page_cpu_ms": _rounded(report_page_cpu_ms),
        "prune_max_lock_ms": round(max(transactions, default=0.0), 2),
        "prune_p50_lock_ms": round(statistics.median(transactions), 2) if transactions else 0.0,
        "prune_transactions": len(transactions),
        "pruned": pruned,
        "prune_s": round(prune_s, 2),
        "claims_during_prune": len(during),
        "claim_max_during_prune_ms": round(max(during, default=0.0), 2),
        "claim_p50_during_prune_ms": round(statistics.median(during), 2) if during else 0.0,
        "sender_lock_wait_max_ms": round(max(waits, default=0.0), 2),
    }
    return figures


def page_cpu_ms(client, url: str, repeat: int) -> float | None:
    """CPU ms per request of `url`: this process (Django, through the test client) plus its
    database backend, parallel workers off so that the backend runs all of the SQL. None when the
    server is not on this host or the connection did not last the requests (DATABASE_CONN_MAX_AGE=0)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")
    try:
        pid = backend_pid()
        before, own = cpu_seconds(pid), time.process_time()
        for _ in range(repeat):
            client.get(url)
        own = time.process_time() - own
        after = cpu_seconds(pid)
        if before is None or after is None or backend_pid() != pid:
            return None
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET max_parallel_workers_per_gather")
    return (after - before + own) * 1000 / repeat


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 2)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from contacts.models import CustomField, MailingList
    from delivery.models import Relay
    from mailplatform.models import User
    from mailplatform.services import api_key_create

    call_command("migrate", verbosity=0)
    # get_or_create throughout: --database may name one an earlier run filled.
    CustomField.objects.get_or_create(name="score", defaults={"label": "Score", "type": "number"})
    CustomField.objects.get_or_create(name="signup_date", defaults={"label": "Signup date", "type": "date"})
    CustomField.objects.get_or_create(name="vip", defaults={"label": "VIP", "type": "boolean"})
    mailing_list = MailingList.objects.filter(name="Bench").order_by("pk").first()
    mailing_list = mailing_list or MailingList.objects.create(name="Bench")
    relay, _ = Relay.objects.get_or_create(name="bench", defaults={"host": "127.0.0.1", "port": 2525})
    user, _ = User.objects.get_or_create(username="bench", defaults={"role": "admin"})
    _, key = api_key_create(
        user=user, name="bench", scopes=["contacts:read"], rate_limit_per_minute=10_000_000
    )
    client = Client()
    client.force_login(user)
    state: dict = {"list": mailing_list.pk, "relay": relay.pk, "key": key, "client": client}
    _resume(state)

    results = []
    for size, ledger_rows in zip(args.contacts, args.ledger_rows, strict=True):
        start = time.perf_counter()
        fill_contacts(size, mailing_list.pk)
        state["contacts"] = size
        if "campaign" not in state:
            setup_fixed(args, state)
        add_sending(args, state)
        fill_ledger(ledger_rows, state)
        print(f"filled {size:,} contacts, {ledger_rows:,} ledger rows in {time.perf_counter() - start:.0f}s")
        figures = measure(args, state, size, ledger_rows)
        print(json.dumps(figures), flush=True)
        results.append(figures)

    first, last = results[0], results[-1]
    growth_keys = (
        "contacts_page_ms",
        "api_list_p95_ms",
        "claim_batch_ms",
        "progress_page_ms",
        "report_page_ms",
    )
    growth = {
        key: round(last[key] / first[key], 2) if first[key] else None
        for key in (*growth_keys, "segment_count_ms", "prune_max_lock_ms")
    }
    print(
        json.dumps(
            {
                "sizes": [r["size"] for r in results],
                "results": results,
                "growth_first_to_last": growth,
                "pages_and_claim_max_growth": max(growth[k] or 0 for k in growth_keys),
                "report_page_ms_at_largest": last["report_page_ms"],
                "prune_max_lock_ms": max(r["prune_max_lock_ms"] for r in results),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
