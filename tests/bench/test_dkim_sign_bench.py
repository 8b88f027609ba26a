"""bench/dkim_sign.py runs at a small size and reports its figures against the bare RSA step."""

from tests.bench.runner import run_bench


def test_dkim_bench_small():
    figures = run_bench("bench/dkim_sign.py", "--seconds", "0.05", "--rounds", "1", timeout=120)
    assert figures["message_bytes"] > 10_000
    assert figures["rsa_sign_per_s"] > 0 and figures["dkim_sign_per_s"] > 0
    assert abs(figures["dkim_ratio"] - figures["dkim_sign_per_s"] / figures["rsa_sign_per_s"]) < 0.01
    assert figures["dkim_cpu_us_per_msg"] > 0
