"""Import benchmark: python bench/import_contacts.py --rows N (default 1,000,000).

Generates a CSV (email, first and last name, 5 attribute columns, 1% invalid addresses, 5%
duplicates), imports it into a new list through the same service as `manage.py import_contacts`,
imports it again (every row now an existing contact), then times the contacts page and a
3-condition segment count over the result. The reference run, in the same process, is a bare
COPY of the same file into an unindexed table: the ratio says what the checks, the dedup and the
merge cost on top of moving the bytes. Beside wall time, the CPU seconds of this process and of
its PostgreSQL backend (read from /proc when the server runs on this host, else 0) for each run
(this process's figure includes the import's reading process, a child it forks and waits for):
on a shared machine they move far less with the load than wall time does.

Runs on a database of its own (posthorn_bench_import_<pid>) on the server DATABASE_URL names,
or on the embedded server; the database is dropped afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402
from cpuwatch import cpu_seconds  # noqa: E402
from measure import backend_pid, median_ms, own_cpu_s, three_condition_segment  # noqa: E402

CITIES = ["Berlin", "Lyon", "Porto", "Oslo", "Turin", "Ghent", "Cork", "Brno", "Graz", "Malmö"]
PLANS = ["free", "pro", "team", "enterprise"]
FIRST = ["Ann", "Bob", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea"]
LAST = ["Berg", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvat", "Ivanova", "Jensen"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First name", "Last name", "Score", "City", "Signup date", "VIP", "Plan"])
        unique = 0
        for n in range(rows):
            roll = rng.random()
            if roll < 0.01:
                email = f"broken{n}@@example"  # invalid
            elif roll < 0.06 and unique:
                email = f"User{rng.randrange(unique)}@Example.com"  # duplicate, other case
            else:
                email = f"user{unique}@example.com"
                unique += 1
            writer.writerow(
                [
                    email,
                    rng.choice(FIRST),
                    rng.choice(LAST),
                    rng.randrange(100),
                    rng.choice(CITIES),
                    f"20{rng.randrange(10, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                    rng.choice(["yes", "no"]),
                    rng.choice(PLANS),
                ]
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.rows < 10:
        parser.error("--rows must be at least 10")

    with own_database("import"):
        os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
        return run(args.rows)


def run(rows: int) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from contacts import selectors, services
    from contacts.models import Contact, CustomField, MailingList
    from mailplatform.models import User

    call_command("migrate", verbosity=0)
    CustomField.objects.create(name="score", label="Score", type="number")
    CustomField.objects.create(name="signup_date", label="Signup date", type="date")
    CustomField.objects.create(name="vip", label="VIP", type="boolean")

    backend = backend_pid()

    def cpu() -> tuple[float, float]:
        # (this process and the children it waited for: a chunked import's reading process, the
        # PostgreSQL backend when the server runs on this host): user+system CPU seconds.
        return own_cpu_s(), cpu_seconds(backend) or 0.0

    def spent(before: tuple[float, float]) -> tuple[float, float]:
        now = cpu()
        return round(now[0] - before[0], 3), round(now[1] - before[1], 3)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.csv"
        start = time.perf_counter()
        generate(path, rows)
        print(
            f"generated {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f}s"
        )

        # Reference: the same bytes through csv + COPY into a bare table.
        with connection.cursor() as cursor:
            cursor.execute("CREATE UNLOGGED TABLE bench_reference (cols text[])")
            start, used = time.perf_counter(), cpu()
            with (
                path.open(encoding="utf-8", newline="") as handle,
                cursor.copy("COPY bench_reference (cols) FROM STDIN") as copy,
            ):
                for record in csv.reader(handle):
                    copy.write_row((record,))
            reference_s = time.perf_counter() - start
            reference_cpu = spent(used)
            cursor.execute("DROP TABLE bench_reference")
        print(
            f"reference (csv + COPY, no checks): {reference_s:.2f}s "
            f"(CPU {reference_cpu[0]:.2f}s here, {reference_cpu[1]:.2f}s PostgreSQL)"
        )

        mailing_list = MailingList.objects.create(name="Bench")

        def one_import() -> tuple[float, object, tuple[float, float]]:
            record = services.contact_import_create(
                path=str(path), filename=path.name, mode="upsert", list_ids=[mailing_list.pk]
            )
            start, used = time.perf_counter(), cpu()
            result = services.contact_import_run(record.pk)
            return time.perf_counter() - start, result, spent(used)

        first_s, first, first_cpu = one_import()
        print(
            f"first import: {first_s:.2f}s ({rows / first_s:,.0f} rows/s, {first_s / reference_s:.1f}x reference; "
            f"CPU {first_cpu[0]:.2f}s here, {first_cpu[1]:.2f}s PostgreSQL): "
            f"{first.created} created, {first.invalid} invalid, {first.duplicates} duplicates"
        )
        reimport_s, again, reimport_cpu = one_import()
        print(
            f"re-import: {reimport_s:.2f}s ({rows / reimport_s:,.0f} rows/s; "
            f"CPU {reimport_cpu[0]:.2f}s here, {reimport_cpu[1]:.2f}s PostgreSQL): "
            f"{again.updated} updated, {again.unchanged} unchanged, {again.created} created"
        )
        load = os.getloadavg()[0]
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # The largest child's peak: the import's reading process (forked, so it shares pages
        # with this one until either writes them).
        reader_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE contacts_contact; ANALYZE contacts_subscription")
    user = User.objects.create(username="bench", role="marketer")
    client = Client()
    client.force_login(user)
    middle = Contact.objects.order_by("id").values_list("id", flat=True)[Contact.objects.count() // 2]

    def contacts_page() -> None:
        for url in ("/contacts/", f"/contacts/?after={middle}", "/contacts/?q=user12345"):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

    contacts_page_ms = median_ms(contacts_page) / 3
    rules = three_condition_segment(mailing_list.pk)
    matched = selectors.segment_count(rules)
    segment_count_ms = median_ms(lambda: selectors.segment_count(rules))
    print(
        f"contacts page: {contacts_page_ms:.1f} ms; segment count ({matched:,} match): {segment_count_ms:.1f} ms"
    )
    print(
        json.dumps(
            {
                "rows": rows,
                "created": first.created,
                "invalid": first.invalid,
                "duplicates": first.duplicates,
                "reimport_updated": again.updated,
                "reimport_unchanged": again.unchanged,
                "first_s": round(first_s, 3),
                "first_per_s": round(rows / first_s, 1),
                "reimport_s": round(reimport_s, 3),
                "reimport_per_s": round(rows / reimport_s, 1),
                "reference_s": round(reference_s, 3),
                "first_vs_reference": round(first_s / reference_s, 2),
                "first_cpu_s": first_cpu[0],
                "first_db_cpu_s": first_cpu[1],
                "reimport_cpu_s": reimport_cpu[0],
                "reimport_db_cpu_s": reimport_cpu[1],
                "reference_cpu_s": reference_cpu[0],
                "reference_db_cpu_s": reference_cpu[1],
                "load_average_1m": round(load, 2),
                "peak_rss_mb": round(peak_rss_mb, 1),
                "reader_peak_rss_mb": round(reader_rss_mb, 1),
                "contacts_page_ms": round(contacts_page_ms, 2),
                "segment_count_ms": round(segment_count_ms, 2),
                "segment_matched": matched,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
