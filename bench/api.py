"""REST API benchmark: python bench/api.py --contacts N (default 1,000,000).

Fills a database of its own with N contacts (one INSERT ... SELECT: setup, not measured), then
through the full stack (Django, DRF, key authentication, Redis rate limit, serializers):
- lists contacts a page at a time (100 per page), walking `next` from the newest and from the
  middle of the table: list_p50_ms, list_p95_ms;
- bulk-upserts batches of 10,000 contacts (half new, half existing) through POST /contacts/bulk,
  which goes through the CSV import service: bulk_upsert_per_s.
References in the same process: the same pages read by contacts.selectors.contacts_page directly
(what the API adds on top of the query), and the same batches given to the import service as
CSV files directly (what the API adds on top of the import).

Runs on posthorn_bench_api_<pid> on the server DATABASE_URL names (or the embedded one) and
drops it afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402
from cpuwatch import cpu_seconds  # noqa: E402
from measure import backend_pid, own_cpu_s  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the table (default 1M)")
    parser.add_argument("--pages", type=int, default=200, help="pages listed (default 200)")
    parser.add_argument("--batch", type=int, default=10_000, help="contacts per bulk call (max 10,000)")
    parser.add_argument("--batches", type=int, default=5, help="bulk calls (default 5)")
    args = parser.parse_args()
    if args.contacts < 100:
        parser.error("--contacts must be at least 100")
    if args.pages < 1 or args.batches < 1:
        parser.error("--pages and --batches must be at least 1")
    if not 2 <= args.batch <= 10_000:
        parser.error("--batch must be from 2 to 10,000 (the API's limit per call)")

    with own_database("api"):
        os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
        os.environ["CACHE_KEY_PREFIX"] = f"posthorn-bench-api-{os.getpid()}"
        # Measured as deployed: DEBUG off (no SQL capture, no debug pages).
        os.environ["DEBUG"] = "false"
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
        return run(args)


def fill(count: int) -> float:
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_contact (email, first_name, last_name, attributes, status, consent_source, "
            "consent_detail, bounce_count, soft_bounce_count, created_at, updated_at, language, timezone) "
            "SELECT 'user' || g || '@example.com', 'First' || (g %% 97), 'Last' || (g %% 89), "
            "jsonb_build_object('score', g %% 100, 'plan', (ARRAY['free','pro','team'])[1 + g %% 3]), "
            "'active', 'import', '', 0, 0, now(), now(), '', '' FROM generate_series(1, %s) AS g",
            [count],
        )
        # As autovacuum would have by the time anyone lists: visibility map set, statistics fresh.
        cursor.execute("VACUUM ANALYZE contacts_contact")
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max, Min
    from django.test import Client

    from contacts import selectors
    from contacts.imports import run_import
    from contacts.models import Contact
    from mailplatform.models import User
    from mailplatform.services import api_key_create

    call_command("migrate", verbosity=0)
    fill_s = fill(args.contacts)
    print(f"filled {args.contacts:,} contacts in {fill_s:.1f}s")

    user = User.objects.create(username="bench", role="admin")
    _, full_key = api_key_create(
        user=user, name="bench", scopes=["contacts:read", "contacts:write"], rate_limit_per_minute=10_000_000
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {full_key}")

    # Listing: half the pages from the newest, half from the middle of the table.
    bounds = Contact.objects.aggregate(low=Min("id"), high=Max("id"))
    middle = (bounds["low"] + bounds["high"]) // 2
    from mailplatform.api.pagination import encode_keyset_cursor

    starts = [
        "/api/v1/contacts/?limit=100",
        f"/api/v1/contacts/?limit=100&cursor={encode_keyset_cursor('after', middle)}",
    ]
    client.get(starts[0])  # warm: connection, key lookup, Redis script
    selectors.contacts_page(size=100)
    # Each API page is followed at once by the same page from the selector alone, so the two are
    # compared under the same load (this box is shared; absolute figures move with it).
    api_ms: list[float] = []
    ref_ms: list[float] = []
    for start_url, first_after in zip(starts, (None, middle), strict=True):
        url, after = start_url, first_after
        for _ in range((args.pages + 1) // 2):
            begin = time.perf_counter()
            response = client.get(url)
            api_ms.append((time.perf_counter() - begin) * 1000)
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            body = response.json()
            assert len(body["results"]) == 100 or not body["next"]
            begin = time.perf_counter()
            contacts, _, _ = selectors.contacts_page(after_id=after, size=100)
            ref_ms.append((time.perf_counter() - begin) * 1000)
            assert [c.pk for c in contacts] == [c["id"] for c in body["results"]]
            url = body["next"]
            if not url or not contacts:
                break
            after = contacts[-1].pk
    api_ms, ref_ms = api_ms[: args.pages], ref_ms[: args.pages]
    list_p50, list_p95 = statistics.median(api_ms), percentile(api_ms, 0.95)
    ref_p50 = statistics.median(ref_ms)
    load = os.getloadavg()[0]
    print(
        f"list: {len(api_ms)} pages, p50 {list_p50:.2f} ms, p95 {list_p95:.2f} ms "
        f"(selector alone p50 {ref_p50:.2f} ms; API/selector {list_p50 / ref_p50:.2f}x; load average {load:.1f})"
    )

    # Bulk upsert: each batch half existing contacts (updated), half new ones.
    def batch(number: int) -> list[dict]:
        half = args.batch // 2
        existing = [
            {
                "email": f"user{1 + (number * half + i) % args.contacts}@example.com",
                "first_name": f"Renamed{number}",
            }
            for i in range(half)
        ]
        new = [
            {"email": f"new{number}-{i}@example.org", "first_name": "New", "attributes": {"score": i % 100}}
            for i in range(args.batch - half)
        ]
        return existing + new

    backend = backend_pid()

    def backend_cpu() -> float:
        # The PostgreSQL backend's user+system CPU seconds, when the server runs on this host.
        return cpu_seconds(backend) or 0.0

    # CPU seconds beside wall time: this process (with any children it reaped) and the PostgreSQL
    # backend, so that a shared machine's load does not hide what a row costs.
    bulk_s = bulk_cpu = bulk_db = 0.0
    created = updated = 0
    for number in range(args.batches):
        payload = json.dumps({"contacts": batch(number)})
        begin, cpu, db = time.perf_counter(), own_cpu_s(), backend_cpu()
        response = client.post("/api/v1/contacts/bulk", payload, content_type="application/json")
        bulk_s += time.perf_counter() - begin
        bulk_cpu += own_cpu_s() - cpu
        bulk_db += backend_cpu() - db
        assert response.status_code == 200, response.content[:500]
        result = response.json()
        created += result["created"]
        updated += result["updated"]
    rows = args.batch * args.batches
    bulk_per_s = rows / bulk_s

    # Reference: the same kind of batches straight into the import service from CSV files.
    ref_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.batches):
            path = Path(tmp) / f"batch{number}.csv"
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["email", "first_name"])
                for row in batch(args.batches + number):
                    writer.writerow([row["email"], row["first_name"]])
            begin = time.perf_counter()
            run_import(path, mode="upsert", label="bench reference")
            ref_s += time.perf_counter() - begin
    ref_per_s = rows / ref_s

    # The rows entry itself (contacts.bulk.contacts_bulk_upsert -> imports.run_import_rows: cells
    # from memory into COPY, no file), the same kind of batches, alternating with the file import
    # so that load falls on both alike; CPU seconds of this process beside wall time.
    from contacts.bulk import contacts_bulk_upsert

    rows_s = file_s = rows_cpu = file_cpu = rows_db = file_db = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.batches):
            rows_batch = batch(2 * args.batches + number)
            begin, cpu, db = time.perf_counter(), own_cpu_s(), backend_cpu()
            contacts_bulk_upsert(rows_batch, mode="upsert", list_ids=[], by=None, via="bench")
            rows_s += time.perf_counter() - begin
            rows_cpu += own_cpu_s() - cpu
            rows_db += backend_cpu() - db
            path = Path(tmp) / f"alt{number}.csv"
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["email", "first_name", "attr:score"])
                for row in batch(3 * args.batches + number):
                    writer.writerow(
                        [row["email"], row["first_name"], (row.get("attributes") or {}).get("score", "")]
                    )
            begin, cpu, db = time.perf_counter(), own_cpu_s(), backend_cpu()
            run_import(path, mode="upsert", label="bench reference")
            file_s += time.perf_counter() - begin
            file_cpu += own_cpu_s() - cpu
            file_db += backend_cpu() - db
    rows_per_s, file_per_s = rows / rows_s, rows / file_s
    print(
        f"rows entry (no file): {rows_per_s:,.0f}/s, {1e6 * rows_cpu / rows:.1f} us CPU a row here; "
        f"import service from a file, alternating: {file_per_s:,.0f}/s, {1e6 * file_cpu / rows:.1f} us CPU a row; "
        f"ratio {rows_per_s / file_per_s:.2f}; PostgreSQL backend CPU a row: {1e6 * rows_db / rows:.1f} us"
        f" (rows entry), {1e6 * file_db / rows:.1f} us (file)"
    )
    print(
        f"bulk upsert: {rows:,} contacts in {args.batches} calls, {bulk_per_s:,.0f}/s "
        f"({created:,} created, {updated:,} updated; import service alone {ref_per_s:,.0f}/s, "
        f"API/service {bulk_per_s / ref_per_s:.2f}x); CPU a row: {1e6 * bulk_cpu / rows:.1f} us here, "
        f"{1e6 * bulk_db / rows:.1f} us PostgreSQL"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contacts_contact")
        total = cursor.fetchone()[0]
    print(
        json.dumps(
            {
                "contacts": args.contacts,
                "contacts_after": total,
                "pages": len(api_ms),
                "list_p50_ms": round(list_p50, 3),
                "list_p95_ms": round(list_p95, 3),
                "selector_p50_ms": round(ref_p50, 3),
                "list_vs_selector": round(list_p50 / ref_p50, 2),
                "load_average_1m": round(load, 2),
                "bulk_rows": rows,
                "bulk_created": created,
                "bulk_updated": updated,
                "bulk_upsert_per_s": round(bulk_per_s, 1),
                "bulk_cpu_us_per_row": round(1e6 * bulk_cpu / rows, 2),
                "bulk_db_cpu_us_per_row": round(1e6 * bulk_db / rows, 2),
                "import_service_per_s": round(ref_per_s, 1),
                "bulk_vs_import_service": round(bulk_per_s / ref_per_s, 2),
                "bulk_rows_entry_per_s": round(rows_per_s, 1),
                "bulk_rows_entry_cpu_us_per_row": round(1e6 * rows_cpu / rows, 2),
                "import_file_alternating_per_s": round(file_per_s, 1),
                "import_file_cpu_us_per_row": round(1e6 * file_cpu / rows, 2),
                "rows_entry_vs_import_file": round(rows_per_s / file_per_s, 2),
                "bulk_rows_entry_db_cpu_us_per_row": round(1e6 * rows_db / rows, 2),
                "import_file_db_cpu_us_per_row": round(1e6 * file_db / rows, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
