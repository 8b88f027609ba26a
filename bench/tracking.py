"""Tracking endpoints under gunicorn, loaded from a second process on loopback.

    python bench/tracking.py --requests 3000

Serves the platform the way production does (gunicorn, DEBUG off), then sends the same number
of requests to a view that does nothing (/t/ping, the reference), to open pixels and to click
redirects (each with its own message's signed token), from a separate client process with a
bounded number of connections. Runs on a database of its own (posthorn_bench_tracking_<pid>)
on the server DATABASE_URL names (or the embedded one), under its own Redis key prefix, and
drops both afterwards. Last line: one JSON object with open_per_s, click_per_s, open_p95_ms,
click_p95_ms, trivial_per_s and the open/click rates as a ratio of the trivial one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchdb import own_database  # noqa: E402
from loopback import free_port  # noqa: E402


def client(port: int, paths: list[str], threads: int, out: multiprocessing.Queue) -> None:
    """Request every path once over `threads` connections' worth of concurrency; report latencies."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    shares = [paths[i::threads] for i in range(threads)]

    def work(share: list[str]) -> None:
        mine, bad = [], 0
        for path in share:
            start = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", path, headers={"User-Agent": "Mozilla/5.0 (bench) Chrome/120"})
                response = conn.getresponse()
                response.read()
                if response.status not in (200, 302):
                    bad += 1
            except OSError:
                bad += 1
            finally:
                conn.close()
            mine.append((time.perf_counter() - start) * 1000)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put({"seconds": time.perf_counter() - started, "latencies": latencies, "errors": errors[0]})


def load(port: int, paths: list[str], threads: int) -> dict[str, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=client, args=(port, paths, threads, queue))
    process.start()
    result = queue.get(timeout=600)
    process.join()
    latencies = sorted(result["latencies"])
    return {"per_s": len(paths) / result["seconds"], "latencies": latencies, "errors": result["errors"]}


def wait_for(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited at start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/t/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer")


def run(requests: int, workers: int, threads: int) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from delivery import tracking
    from delivery.mailings import mailing_create
    from delivery.models import Mailing, Message, MessageEvent, SendingIdentity
    from templates.compiler import compile_template

    links = "".join(
        f'<p><a href="https://shop.example.com/item/{i}?ref=mail">Item {i}</a></p>' for i in range(5)
    )
    compiled = compile_template(
        subject="Bench", html=f"<html><body>{links}<a href='{{{{ unsubscribe_url }}}}'>u</a></body></html>"
    )
    SendingIdentity.objects.get_or_create(address="example.com")  # the From must be an identity
    mailing = mailing_create(name="bench", compiled=compiled, from_email="bench@example.com")
    Message.objects.bulk_create(
        Message(mailing=mailing, send_group=mailing.send_group, email=f"r{i}@example.org", state="sent",
                idempotency_key=f"bench-{i}")
        for i in range(requests + 1)
    )  # fmt: skip
    # The last message only warms the workers up: its late hits never count as measured events.
    *ids, warm_id = Message.objects.filter(mailing=mailing).order_by("id").values_list("id", flat=True)
    opens = [f"/t/o/{tracking.token(mailing.pk, i)}.gif" for i in ids]
    clicks = [f"/t/c/{tracking.token(mailing.pk, i)}/{n % 5}" for n, i in enumerate(ids)]
    trivial = ["/t/ping"] * requests

    port = free_port()
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "DATABASE_URL": settings.DATABASE_URL}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mailplatform.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--log-level", "warning"],
        cwd=REPO, env=env,
    )  # fmt: skip
    try:
        wait_for(port, server)
        warm_up = (
            f"/t/o/{tracking.token(mailing.pk, warm_id)}.gif",
            f"/t/c/{tracking.token(mailing.pk, warm_id)}/0",
        )
        for path in warm_up:  # warm each worker's caches a little
            load(port, [path] * workers * 4, workers)
        # The warm-up's hits reach Redis within a push interval: wait for them, then drop them.
        time.sleep(3 * settings.TRACKING_PUSH_MS / 1000 + 0.2)
        tracking._redis().delete(tracking.buffer_key())
        # Interleaved rounds, so drift on a shared machine (other load, TIME_WAIT sockets) hits
        # the reference and the tracking endpoints alike.
        rounds = 5
        totals = {
            name: {"seconds": 0.0, "latencies": [], "errors": 0, "count": 0}
            for name in ("trivial", "open", "click")
        }
        for index in range(rounds):
            for name, paths in (("trivial", trivial), ("open", opens), ("click", clicks)):
                part = paths[index::rounds]
                measured = load(port, part, threads)
                totals[name]["seconds"] += len(part) / measured["per_s"]
                totals[name]["latencies"].extend(measured["latencies"])
                totals[name]["errors"] += measured["errors"]
                totals[name]["count"] += len(part)
        figures = {}
        for name, total in totals.items():
            latencies = sorted(total["latencies"])
            figures[name] = {
                "per_s": total["count"] / total["seconds"],
                "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
                "median_ms": statistics.median(latencies),
                "errors": total["errors"],
            }
            print(
                f"{name:8s} {figures[name]['per_s']:8.0f}/s  median {figures[name]['median_ms']:.1f} ms  "
                f"p95 {figures[name]['p95_ms']:.1f} ms  errors {figures[name]['errors']}"
            )
        # Let each worker's pusher hand its last hits to Redis before the workers stop.
        time.sleep(3 * settings.TRACKING_PUSH_MS / 1000 + 0.2)
    finally:
        server.terminate()
        server.wait(60)
    buffered = tracking.buffered_count()
    start = time.perf_counter()
    flushed = tracking.tracking_flush()
    flush_s = time.perf_counter() - start
    written = MessageEvent.objects.filter(message_id__in=ids).count()
    tracking._redis().delete(tracking.buffer_key())
    print(
        f"buffered {buffered} hits; flushed {flushed} events in {flush_s:.2f} s; {written} for measured messages"
    )
    assert Mailing.objects.filter(pk=mailing.pk).exists()
    result = {
        "requests": requests,
        "trivial_per_s": round(figures["trivial"]["per_s"], 1),
        "open_per_s": round(figures["open"]["per_s"], 1),
        "click_per_s": round(figures["click"]["per_s"], 1),
        "trivial_p95_ms": round(figures["trivial"]["p95_ms"], 2),
        "open_p95_ms": round(figures["open"]["p95_ms"], 2),
        "click_p95_ms": round(figures["click"]["p95_ms"], 2),
        "open_ratio": round(figures["open"]["per_s"] / figures["trivial"]["per_s"], 3),
        "click_ratio": round(figures["click"]["per_s"] / figures["trivial"]["per_s"], 3),
        "errors": int(sum(f["errors"] for f in figures.values())),
        "events_written": int(written),
        "flush_per_s": round(flushed / flush_s, 1) if flush_s else 0.0,
    }
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="concurrent client connections")
    args = parser.parse_args()
    if args.requests < 10:
        parser.error("--requests must be at least 10")
    with own_database("tracking"):
        os.environ["DEBUG"] = "0"
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(40)
        os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
        os.environ["CACHE_KEY_PREFIX"] = f"bench-tracking-{os.getpid()}"
        os.environ["LOG_LEVEL"] = "WARNING"
        return run(args.requests, args.workers, args.threads)


if __name__ == "__main__":
    sys.exit(main())
