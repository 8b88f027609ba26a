"""The import benchmark runs at a small size so it cannot rot; its figures are not asserted."""

import pytest

from tests.bench.runner import run_bench, server_databases, server_env


@pytest.mark.slow
@pytest.mark.django_db
def test_import_bench_runs_and_prints_json():
    # Another run on a shared server may hold a bench database of its own; only ours must go.
    before = server_databases()
    figures = run_bench("bench/import_contacts.py", "--rows", "3000", env=server_env())
    assert figures["rows"] == 3000
    # The generator's mix: ~1% invalid, ~5% duplicates; every valid unique row is created once.
    assert 10 <= figures["invalid"] <= 60 and 80 <= figures["duplicates"] <= 250
    assert figures["created"] + figures["invalid"] + figures["duplicates"] == 3000
    assert figures["reimport_updated"] + figures["reimport_unchanged"] == figures["created"]
    for key in ("first_per_s", "reimport_per_s", "peak_rss_mb", "contacts_page_ms", "segment_count_ms"):
        assert figures[key] > 0
    # CPU seconds beside wall time (the backend's are 0 when the server is on another host).
    for key in ("first_cpu_s", "reimport_cpu_s", "reference_cpu_s"):
        assert figures[key] > 0
    for key in ("first_db_cpu_s", "reimport_db_cpu_s", "reference_db_cpu_s", "load_average_1m"):
        assert figures[key] >= 0
    left = server_databases() - before
    assert not any(name.startswith("posthorn_bench_import_") for name in left)
