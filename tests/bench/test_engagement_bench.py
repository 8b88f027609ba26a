"""The engagement segment benchmark runs at a small size so it cannot rot; its timings are not asserted."""

import pytest

from tests.bench.runner import run_bench, server_databases, server_env


@pytest.mark.slow
@pytest.mark.django_db
def test_engagement_bench_runs_and_prints_json():
    before = server_databases()
    figures = run_bench("bench/engagement.py", "--contacts", "2000", env=server_env())
    assert figures["contacts"] == 2000 and figures["engagement_rows"] == 16000
    # ~10 events per contact: 8 received, ~1.3 opened, ~0.3 clicked, ~0.4 machine opens.
    assert 18000 <= figures["events"] <= 22000
    # Who matches follows from the generator's draws: clickers are a subset of openers, and the
    # resend audience (received the latest, no human open) is ~84% of the contacts.
    assert 0 < figures["engagement_matched"] < figures["recent_matched"]
    assert 1500 <= figures["resend_matched"] <= 1850
    assert figures["machine_matched"] > figures["engagement_matched"]
    for key in ("engagement_count_ms", "resend_count_ms", "recent_count_ms", "machine_count_ms"):
        assert figures[key] > 0
    # Another run on a shared server may hold a bench database of its own; only ours must go.
    left = server_databases() - before
    assert not any(name.startswith("posthorn_bench_engagement_") for name in left)
