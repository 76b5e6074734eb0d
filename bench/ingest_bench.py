"""Ingest benchmark: the real receiver against an empty Flask endpoint, same gunicorn, same run.

    python bench/ingest_bench.py [--db sqlite|postgresql|both] [--duration 15] [--connections 64]

For each target, gunicorn (2 workers, gthread, 16 threads, as `aftersale web`
runs it) serves the app, and wrk posts signed Shopify `orders/create`
webhooks (the fixture body, ~9 KB: more than the 6 KB asked for) with a unique X-Shopify-Webhook-Id per
request, as fast as it can. Then a fixed load of --rate requests/s measures
latency. After each real run the stored deliveries are counted against the
answered requests: every 200 must be a row. Prints one table; the ratio
column is real throughput over the empty endpoint's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    SECRET,
    aftersale_env,
    database,
    gunicorn,
    print_table,
    redis_server,
    run_wrk,
    tree_cpu_seconds,
    wait_ready,
)

BODY_FIXTURE = ROOT / "tests" / "fixtures" / "shopify" / "orders__create.json"

LUA = """
local body_file = io.open("%(body_path)s", "rb")
local body = body_file:read("*a")
body_file:close()
local counter = 0
local next_id = 0
-- thread_id is set per thread by setup() as a global of that thread's Lua state
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
function request()
  counter = counter + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["X-Shopify-Topic"] = "orders/create"
  headers["X-Shopify-Hmac-Sha256"] = "%(signature)s"
  headers["X-Shopify-Shop-Domain"] = "aftersale-demo.myshopify.com"
  headers["X-Shopify-API-Version"] = "2025-10"
  headers["X-Shopify-Webhook-Id"] = string.format("%(run)s-%%d-%%d", thread_id, counter)
  return wrk.format("POST", "/webhooks/shopify", headers, body)
end
"""


def body_bytes() -> bytes:
    payload = json.loads(BODY_FIXTURE.read_text())
    return json.dumps(
        payload, separators=(",", ":"), ensure_ascii=False
    ).encode()  # compact, as Shopify sends


def write_script(folder: Path, body: bytes, run: str) -> Path:
    body_path = folder / "body.json"
    body_path.write_bytes(body)
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    script = folder / f"post-{run}.lua"
    script.write_text(LUA % {"body_path": body_path, "signature": signature, "run": run})
    return script


def fixed_rate(url: str, body: bytes, rate: float, seconds: float) -> dict:
    """Open-loop load at ``rate`` requests/s; latency of each request, in ms."""
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    latencies, statuses, lock = [], [], threading.Lock()
    session_local = threading.local()

    def one(index: int) -> None:
        session = getattr(session_local, "s", None) or requests.Session()
        session_local.s = session
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": signature,
            "X-Shopify-Shop-Domain": "aftersale-demo.myshopify.com",
            "X-Shopify-API-Version": "2025-10",
            "X-Shopify-Webhook-Id": f"rate-{uuid.uuid4()}",
        }
        start = time.perf_counter()
        response = session.post(url + "/webhooks/shopify", data=body, headers=headers, timeout=10)
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            latencies.append(elapsed)
            statuses.append(response.status_code)

    from concurrent.futures import ThreadPoolExecutor

    total = int(rate * seconds)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "ok": sum(1 for s in statuses if s == 200),
        "sent": total,
    }


def count_deliveries(database_url: str) -> int:
    from sqlalchemy import func, select

    from aftersale.store.db import make_engine
    from aftersale.store.tables import deliveries

    engine = make_engine(database_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(deliveries)).scalar_one()
    engine.dispose()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=int, default=15, help="seconds of wrk load per target")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=16, help="threads per gunicorn worker")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests/s of the fixed-rate latency run"
    )
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    args = parser.parse_args()

    body = body_bytes()
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    gconf = {"workers": args.workers, "threads": args.threads}
    with redis_server() as redis_url:
        print(
            f"body {len(body)} bytes, {args.connections} connections, {args.duration}s per target",
            flush=True,
        )
        with (
            database("sqlite") as url,
            gunicorn(
                "bench.empty_app:create_app()",
                aftersale_env(url, redis_url, folder / "empty"),
                log_path=folder / "empty.log",
                **gconf,
            ) as (base, server),
        ):
            run_wrk(
                base + "/webhooks/shopify",
                write_script(folder, body, "warm"),
                duration=2,
                connections=args.connections,
            )
            cpu_before = tree_cpu_seconds(server.pid)
            empty = run_wrk(
                base + "/webhooks/shopify",
                write_script(folder, body, "empty"),
                duration=args.duration,
                connections=args.connections,
            )
            empty["cpu_ms"] = (tree_cpu_seconds(server.pid) - cpu_before) * 1000 / empty["requests"]
            rate = fixed_rate(base, body, args.rate, args.rate_seconds)
        rows.append(
            [
                "empty Flask endpoint",
                empty["rps"],
                empty["p50_ms"],
                empty["p99_ms"],
                1.0,
                empty["cpu_ms"],
                rate["p50_ms"],
                rate["p99_ms"],
                "-",
            ]
        )
        for backend in backends:
            with (
                database(backend) as url,
                gunicorn(
                    "aftersale.web:create_app()",
                    aftersale_env(url, redis_url, folder / backend),
                    log_path=folder / f"{backend}.log",
                    **gconf,
                ) as (base, server),
            ):
                wait_ready(base)
                run_wrk(
                    base + "/webhooks/shopify",
                    write_script(folder, body, f"warm-{backend}"),
                    duration=2,
                    connections=args.connections,
                )
                time.sleep(1)  # the warm-up's last requests are committed before counting
                before = count_deliveries(url)
                cpu_before = tree_cpu_seconds(server.pid)
                real = run_wrk(
                    base + "/webhooks/shopify",
                    write_script(folder, body, backend),
                    duration=args.duration,
                    connections=args.connections,
                )
                real["cpu_ms"] = (
                    (tree_cpu_seconds(server.pid) - cpu_before) * 1000 / real["requests"]
                )
                time.sleep(1)
                stored = count_deliveries(url) - before
                rate = fixed_rate(base, body, args.rate, args.rate_seconds)
            answered = real["requests"] - real["non_2xx"]
            # wrk stops counting with requests still in flight: those are stored but not counted
            in_flight = args.connections
            check = (
                "ok: every 200 stored"
                if answered <= stored <= answered + in_flight
                else f"MISMATCH stored {stored} answered {answered}"
            )
            rows.append(
                [
                    f"aftersale receiver ({backend})",
                    real["rps"],
                    real["p50_ms"],
                    real["p99_ms"],
                    real["rps"] / empty["rps"],
                    real["cpu_ms"],
                    rate["p50_ms"],
                    rate["p99_ms"],
                    f"{stored} stored, {real['non_2xx']} non-2xx, {check}",
                ]
            )
    print_table(
        "Ingest: verify + durable store + hand-off to RQ, vs an empty endpoint (same gunicorn)",
        [
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "ratio",
            "server CPU ms/req",
            f"p50 ms @{args.rate:.0f}/s",
            f"p99 ms @{args.rate:.0f}/s",
            "check",
        ],
        rows,
    )
    print(f"logs and scripts in {folder}")


if __name__ == "__main__":
    main()
