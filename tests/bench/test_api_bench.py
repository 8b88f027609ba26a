"""bench/api.py runs at a small size and reports its figures."""

from tests.bench.runner import run_bench, run_bench_refused


def test_api_bench_small():
    figures = run_bench(
        "bench/api.py", "--contacts", "1000", "--pages", "4", "--batch", "300", "--batches", "2"
    )
    assert figures["contacts"] == 1000 and figures["pages"] == 4
    assert figures["bulk_rows"] == 600 and figures["bulk_created"] == 300 and figures["bulk_updated"] == 300
    # The reference run and the alternating rows-entry / file runs each add their own new ones.
    assert figures["contacts_after"] == 1000 + 300 + 300 + 300 + 300
    assert figures["list_p50_ms"] > 0 and figures["list_p95_ms"] >= figures["list_p50_ms"]
    assert figures["bulk_upsert_per_s"] > 0 and figures["import_service_per_s"] > 0
    assert figures["bulk_rows_entry_per_s"] > 0 and figures["import_file_alternating_per_s"] > 0
    assert figures["bulk_rows_entry_cpu_us_per_row"] > 0


def test_api_bench_refuses_a_bad_size():
    assert "--batch" in run_bench_refused("bench/api.py", "--batch", "20000")
