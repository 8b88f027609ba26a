"""bench/bounce_corpus.py runs at a small size and reports its figures."""

from tests.bench.runner import run_bench, run_bench_refused
from tests.conftest import shared_corpus


def test_bounce_corpus_bench_small() -> None:
    corpus = shared_corpus("corpus/bounces")
    figures = run_bench(
        "bench/bounce_corpus.py", "--corpus", str(corpus), "--seconds", "0.2", "--apply", "20", "--batch", "7",
        "--pipe-clients", "2",
    )  # fmt: skip
    assert figures["crashes"] == 0 and figures["files"] > 800
    assert figures["parse_per_s"] > 0 and figures["bounces_per_s"] > 0 and figures["applied"] >= 20
    assert figures["batch"] == 7 and figures["single_applied"] >= 1 and figures["single_bounces_per_s"] > 0
    assert figures["listener_accepted"] >= 1 and figures["listener_bounces_per_s"] > 0
    # the listener runs with its classifier processes, and what each bounce cost is accounted
    assert figures["listener_processes"] >= 2 and figures["listener_cpu_ms_per_bounce"] > 0
    assert figures["total_cpu_ms_per_bounce"] >= figures["listener_cpu_ms_per_bounce"]
    assert figures["cpu_bound_bounces_per_s"] > 0
    # the MTA's pipe, a process per message: handed to the listener, and the old way for reference
    assert figures["pipe_clients"] == 2 and figures["pipe_stored"] >= 2 and figures["pipe_bounces_per_s"] > 0
    assert figures["pipe_local_stored"] >= 1 and figures["pipe_local_bounces_per_s"] > 0
    assert figures["pipe_cpu_ms_per_bounce"] > 0 and figures["pipe_local_cpu_ms_per_bounce"] > 0


def test_bounce_corpus_bench_refuses_a_missing_corpus(tmp_path) -> None:
    assert "--corpus" in run_bench_refused("bench/bounce_corpus.py", "--corpus", str(tmp_path))
