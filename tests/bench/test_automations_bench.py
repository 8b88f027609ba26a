"""bench/automations.py runs at a small size: every transition made, one ledger row per run and
send step, every mail at the sink once, the campaign comparison measured."""

import pytest

from tests.bench.runner import run_bench, run_bench_refused, worker_env

pytestmark = pytest.mark.slow


def test_automations_bench_small():
    figures = run_bench("bench/automations.py", "--contacts", "200", env=worker_env())
    assert figures["contacts"] == 200 and figures["transitions"] == 4 * 200
    assert figures["sends"] == 400 and figures["ledger_rows"] == figures["ledger_keys"] == 400
    assert figures["received"] == 600 and figures["duplicates"] == 0 and figures["missing"] == 0
    assert (
        figures["transitions_per_s"] > 0
        and figures["sends_per_s"] > 0
        and figures["campaign_sends_per_s"] > 0
    )
    assert abs(figures["ratio"] - figures["sends_per_s"] / figures["campaign_sends_per_s"]) < 0.01


def test_automations_bench_refuses_a_bad_size():
    assert "--contacts" in run_bench_refused("bench/automations.py", "--contacts", "0", env=worker_env())
