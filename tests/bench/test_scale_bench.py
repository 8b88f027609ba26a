"""bench/scale.py runs once at a tiny size: every figure of issue #18 item 7, per size and summed up."""

import os

import psycopg
import pytest
from django.db import connection

from tests.bench.runner import run_bench, run_bench_refused, server_databases, server_env

PER_SIZE = (
    "contacts_page_ms",
    "api_list_p95_ms",
    "segment_count_ms",
    "claim_batch_ms",
    "progress_page_ms",
    "report_page_ms",
    "prune_max_lock_ms",
)


@pytest.mark.django_db
def test_scale_bench_small():
    before = server_databases()
    figures = run_bench(
        "bench/scale.py",
        *("--contacts", "300,600", "--campaign", "100", "--queued", "100", "--repeat", "1", "--pages", "2"),
        env=server_env(),
    )
    assert figures["sizes"] == [300, 600]
    small, large = figures["results"]
    for row, size in ((small, 300), (large, 600)):
        assert row["size"] == size and row["ledger_rows"] == size
        assert all(row[key] > 0 for key in PER_SIZE), row
        # The old Mailing went (its 100 Messages, in transactions of DELIVERY_PRUNE_BATCH), and the
        # sender claimed beside it without waiting on the prune's locks for long.
        assert row["pruned"] == 100 and row["prune_transactions"] >= 2
        assert row["claims_during_prune"] >= 1 and row["sender_lock_wait_max_ms"] < 1000
        # Backend CPU of the count, of its row tests alone (no list probes) and of one read of the
        # contact table (the server runs here).
        assert row["segment_count_cpu_ms"] >= 0 and row["contact_scan_cpu_ms"] >= 0, row
        assert row["segment_rows_cpu_ms"] >= 0, row
        assert row["report_page_cpu_ms"] > 0, row  # Django's own CPU alone is never nothing
    # The segment: first name "a…" (1 in 12), score > 50 (1 in 2), on the list (19 in 20).
    assert 0 < small["segment_matched"] < large["segment_matched"] < 600 / 12
    assert set(figures["growth_first_to_last"]) >= set(PER_SIZE)
    assert figures["prune_max_lock_ms"] == max(small["prune_max_lock_ms"], large["prune_max_lock_ms"])
    left = server_databases() - before
    assert not any(name.startswith("posthorn_bench_scale_") for name in left)


def test_scale_bench_refuses_sizes_that_shrink():
    assert "smallest first" in run_bench_refused("bench/scale.py", "--contacts", "1000,500")


def _admin_params() -> dict:
    params = connection.settings_dict
    return {
        "dbname": "postgres",
        "user": params["USER"],
        "password": params["PASSWORD"] or None,
        "host": params["HOST"],
        "port": params["PORT"] or 5432,
    }


@pytest.mark.django_db
def test_scale_bench_grows_a_named_database_once_and_measures_it_again():
    name = f"posthorn_bench_scale_named_{os.getpid()}"
    args = ("--campaign", "100", "--queued", "100", "--repeat", "1", "--pages", "2", "--database", name)
    try:
        first = run_bench("bench/scale.py", "--contacts", "300", *args, env=server_env())
        assert name in server_databases()  # kept
        again = run_bench("bench/scale.py", "--contacts", "300", *args, env=server_env())
        grown = run_bench("bench/scale.py", "--contacts", "300,500", *args, env=server_env())
    finally:
        with psycopg.connect(**_admin_params(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    # The second run filled nothing: the same contacts, the same report campaign's events (its
    # prune removed only the old Mailing it added itself), and the same segment.
    assert first["results"][0]["contacts_held"] == again["results"][0]["contacts_held"] == 300
    assert again["results"][0]["events"] == first["results"][0]["events"]
    assert again["results"][0]["segment_matched"] == first["results"][0]["segment_matched"]
    # A larger size grows it from where it was.
    assert [row["contacts_held"] for row in grown["results"]] == [300, 500]
