"""Engagement segment benchmark: python bench/engagement.py --contacts N (default 1,000,000).

Fills N contacts and about 10N engagement events (8 mailings sent to every contact: 8N received;
~16% of those opened by a person, ~4% clicked, ~5% opened by a machine) into contacts' engagement
table and the contacts' own last_sent / last_opened / last_clicked columns, as delivery's writes
leave them; then times segment counts through contacts.selectors.segment_count, the dashboard's
live count:

- `engagement_count_ms`: the two-condition segment "opened the latest mailing AND clicked a link
  containing 'pricing'" (human hits);
- `resend_count_ms`: "received the latest mailing AND did not open it" (the resend audience);
- `recent_count_ms`: "opened any mailing in the last 30 days AND clicked a link containing
  'pricing'";
- `machine_count_ms`: "opened the latest mailing, machine hits too, AND received it".

Each is the median of 5 runs after one warm-up. Runs on a database of its own
(posthorn_bench_engagement_<pid>) on the server DATABASE_URL names, or on the embedded server;
the database is dropped afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402
from measure import median_ms  # noqa: E402

MAILINGS = 8


def timed_ms(fn, repeat: int = 5) -> float:
    fn()  # warm-up: the first run reads the pages into the cache
    return median_ms(fn, repeat)


def fill(cursor, contacts: int) -> None:
    cursor.execute(
        "INSERT INTO contacts_contact (email, first_name, last_name, attributes, language, timezone, status, "
        "consent_source, consent_detail, bounce_count, soft_bounce_count, created_at, updated_at) "
        "SELECT 'user' || g || '@example.com', '', '', '{}', '', '', 'active', '', '', 0, 0, now(), now() "
        "FROM generate_series(1, %s) AS g",
        [contacts],
    )
    # Secondary indexes are dropped while loading and built again after, as they were: the same end
    # state as delivery's writes, reached in a fraction of the time.
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
        "('contacts_engagement', 'contacts_engagementclick') AND indexname NOT LIKE '%%pkey'"
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    # Each mailing has 20 links and a pricing page; 1% of its recipients click pricing, 3% another.
    cursor.execute(
        "INSERT INTO contacts_engagementlink (url) SELECT 'https://shop.example/m' || m || '/' || "
        "CASE WHEN k = 20 THEN 'pricing' ELSE 'p' || k END "
        "FROM generate_series(1, %s) AS m, generate_series(0, 20) AS k ORDER BY m, k",
        [MAILINGS],
    )
    cursor.execute("SELECT min(id) FROM contacts_contact")
    first = cursor.fetchone()[0]
    cursor.execute("SELECT min(id) FROM contacts_engagementlink")
    first_link = cursor.fetchone()[0]
    for m in range(1, MAILINGS + 1):
        # Mailing m went out (MAILINGS - m) weeks ago; r is the row's one random draw.
        cursor.execute(
            """
            WITH draws AS MATERIALIZED (
                SELECT c, random() AS r, now() - make_interval(days => 7 * (%(n)s - %(m)s)) AS sent
                FROM generate_series(%(first)s, %(first)s + %(contacts)s - 1) AS c
            ), rows AS (
                INSERT INTO contacts_engagement (mailing_id, contact_id, sent_at, opened_at, clicked_at,
                                                 machine_opened_at)
                SELECT %(m)s, c, sent,
                       CASE WHEN r < 0.16 THEN sent + interval '2 hours' END,
                       CASE WHEN r < 0.04 THEN sent + interval '3 hours' END,
                       CASE WHEN r >= 0.16 AND r < 0.21 THEN sent + interval '1 minute' END
                FROM draws
            )
            INSERT INTO contacts_engagementclick (link_id, machine, contact_id)
            SELECT %(links)s + (CASE WHEN r < 0.01 THEN 20 ELSE (r * 1e6)::int %% 20 END), FALSE, c
            FROM draws WHERE r < 0.04
            """,
            {"m": m, "n": MAILINGS, "first": first, "contacts": contacts, "links": first_link + 21 * (m - 1)},
        )
    for _, definition in indexes:
        cursor.execute(definition)
    cursor.execute(
        """
        UPDATE contacts_contact c SET last_sent_at = e.sent, last_opened_at = e.opened, last_clicked_at = e.clicked
        FROM (SELECT contact_id, max(sent_at) AS sent, max(opened_at) AS opened, max(clicked_at) AS clicked
              FROM contacts_engagement GROUP BY contact_id) AS e
        WHERE e.contact_id = c.id
        """
    )
    cursor.execute("VACUUM ANALYZE contacts_contact")
    cursor.execute("VACUUM ANALYZE contacts_engagement")
    cursor.execute("VACUUM ANALYZE contacts_engagementclick")
    cursor.execute("VACUUM ANALYZE contacts_engagementlink")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.contacts < 100:
        parser.error("--contacts must be at least 100")
    with own_database("engagement"):
        return run(args.contacts)


def run(contacts: int) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from contacts import selectors

    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        fill(cursor, contacts)
        cursor.execute(
            "SELECT count(sent_at), count(opened_at), count(clicked_at), count(machine_opened_at), "
            "pg_total_relation_size('contacts_engagement') + pg_total_relation_size('contacts_engagementclick') "
            "FROM contacts_engagement"
        )
        received, opened, clicked, machine, table_bytes = cursor.fetchone()
    events = received + opened + clicked + machine
    print(
        f"filled {contacts:,} contacts and {events:,} events ({received:,} received, {opened:,} opened, "
        f"{clicked:,} clicked, {machine:,} machine opens) in {time.perf_counter() - start:.1f}s; "
        f"engagement tables and indexes {table_bytes / 1e6:.0f} MB"
    )

    def rules(*conditions):
        return {"match": "all", "groups": [{"match": "all", "conditions": list(conditions)}]}

    latest = str(MAILINGS)
    segments = {
        "engagement": rules(
            {"field": "opened", "op": "mailing", "value": latest},
            {"field": "clicked_link", "op": "contains", "value": "pricing"},
        ),
        "resend": rules(
            {"field": "received", "op": "mailing", "value": latest},
            {"field": "opened", "op": "not_mailing", "value": latest},
        ),
        "recent": rules(
            {"field": "opened", "op": "in_last_days", "value": "30"},
            {"field": "clicked_link", "op": "contains", "value": "pricing"},
        ),
        "machine": rules(
            {"field": "opened", "op": "mailing", "value": latest, "machine": True},
            {"field": "received", "op": "mailing", "value": latest},
        ),
    }
    figures: dict[str, int | float] = {"contacts": contacts, "events": events, "engagement_rows": received}
    for name, segment in segments.items():
        matched = selectors.segment_count(segment)
        ms = timed_ms(lambda segment=segment: selectors.segment_count(segment))
        print(f"{name}: {matched:,} contacts match, counted in {ms:.1f} ms")
        figures[f"{name}_matched"] = matched
        figures[f"{name}_count_ms"] = round(ms, 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
