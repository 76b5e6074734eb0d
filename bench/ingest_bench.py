"""Ingest benchmark: the real receiver against an empty Flask endpoint under gunicorn, one run.

    python bench/ingest_bench.py [--db sqlite|postgresql|both] [--duration 15] [--connections 64]

The baseline is the issue's: an empty Flask endpoint under gunicorn (2 workers,
gthread, 16 threads, bench/gunicorn_baseline.py: the web process's settings before
it moved to granian). The receiver runs as production runs it, ``aftersale web``
(granian, 2 workers x 16 threads), which the issue allows ("a receiver on another
well-kept server stack"); a reference row serves the same empty endpoint on granian,
so the table also shows how much of the ratio is the server's. wrk posts signed Shopify `orders/create`
webhooks (the fixture body, ~9 KB: more than the 6 KB asked for), each a distinct
order (its own id, body hash and HMAC) with a unique X-Shopify-Webhook-Id per request,
as fast as it can. The empty endpoint stays up the whole run, and each receiver is
loaded in --rounds slices alternating with it, so a ratio compares the two under the
same background load (the machine is shared). Then a fixed load of --rate requests/s
measures latency. After each real run the stored deliveries are counted against the
answered requests: every 200 must be a row. Prints one table; the ratio column is
the receiver's throughput over the empty endpoint's in the slices beside it.
``--before <checkout>`` measures another version of the code in the same run.
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
    granian_wsgi,
    gunicorn,
    import_root,
    print_table,
    redis_server,
    run_wrk,
    tree_cpu_seconds,
    wait_ready,
    web_server,
)

BODY_FIXTURE = ROOT / "tests" / "fixtures" / "shopify" / "orders__create.json"

LUA = """
-- Every request is a distinct delivery: the order id differs, so the body (and its
-- hash, which the receiver dedupes on) differs, and each body has its own HMAC,
-- computed in Python beforehand (wrk's Lua has no SHA-256).
local function slurp(path)
  local f = io.open(path, "rb")
  local data = f:read("*a")
  f:close()
  return data
end
local prefix = slurp("%(prefix_path)s")
local suffix = slurp("%(suffix_path)s")
local per_thread = %(per_thread)d
local first_id = %(first_id)d
local signatures = {}
for line in io.lines("%(signatures_path)s") do
  signatures[#signatures + 1] = line
end
local counter = 0
local next_id = 0
-- thread_id is set per thread by setup() as a global of that thread's Lua state
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
function request()
  -- past the pool, ids repeat: the receiver answers those as duplicates (counted in the table)
  local index = thread_id * per_thread + (counter %% per_thread)
  counter = counter + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["X-Shopify-Topic"] = "orders/create"
  headers["X-Shopify-Hmac-Sha256"] = signatures[index + 1]
  headers["X-Shopify-Shop-Domain"] = "aftersale-demo.myshopify.com"
  headers["X-Shopify-API-Version"] = "2025-10"
  headers["X-Shopify-Webhook-Id"] = string.format("%(run)s-%%d-%%d", thread_id, counter)
  return wrk.format("POST", "/webhooks/shopify", headers, prefix .. (first_id + index) .. suffix)
end
"""

#: the most requests/s one wrk thread is expected to send; sizes the pool of distinct bodies
POOL_RATE_PER_THREAD = 6000
ID_MARK = "__ORDER_ID__"


class OrderBodies:
    """Distinct compact ``orders/create`` bodies: the fixture with its order id replaced.

    Shopify sends each order once; a bench that posts one body again and again
    measures the duplicate path (the receiver dedupes on the body hash), not ingest.
    """

    def __init__(self):
        payload = json.loads(BODY_FIXTURE.read_text())
        payload["id"] = ID_MARK
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        before, after = text.split(json.dumps(ID_MARK), 1)
        self.prefix, self.suffix = before.encode(), after.encode()
        self._next_id = 7_000_000_000_000

    def body(self, order_id: int) -> bytes:
        return self.prefix + str(order_id).encode() + self.suffix

    def take_ids(self, count: int) -> int:
        """Reserve ``count`` order ids never used before in this process; the first one."""
        first = self._next_id
        self._next_id += count
        return first


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def write_script(folder: Path, bodies: OrderBodies, run: str, duration: int, threads: int = 2):
    """A wrk script posting ``threads`` x pool distinct signed bodies."""
    per_thread = POOL_RATE_PER_THREAD * duration
    first_id = bodies.take_ids(per_thread * threads)
    (folder / "prefix.json").write_bytes(bodies.prefix)
    (folder / "suffix.json").write_bytes(bodies.suffix)
    signatures_path = folder / f"signatures-{run}.txt"
    with signatures_path.open("w") as out:
        for index in range(per_thread * threads):
            out.write(sign(bodies.body(first_id + index)) + "\n")
    script = folder / f"post-{run}.lua"
    script.write_text(
        LUA
        % {
            "prefix_path": folder / "prefix.json",
            "suffix_path": folder / "suffix.json",
            "signatures_path": signatures_path,
            "per_thread": per_thread,
            "first_id": first_id,
            "run": run,
        }
    )
    return script


def fixed_rate(url: str, bodies: OrderBodies, rate: float, seconds: float) -> dict:
    """Open-loop load at ``rate`` requests/s of distinct orders; latency of each, in ms."""
    latencies, statuses, lock = [], [], threading.Lock()
    session_local = threading.local()
    total = int(rate * seconds)
    first_id = bodies.take_ids(total)
    signed = [(b, sign(b)) for b in (bodies.body(first_id + i) for i in range(total))]

    def one(index: int) -> None:
        session = getattr(session_local, "s", None) or requests.Session()
        session_local.s = session
        body, signature = signed[index]
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


class Target:
    """A running gunicorn under load in slices: requests, seconds and server CPU add up."""

    def __init__(self, base: str, server, folder: Path, bodies: OrderBodies, connections: int):
        self.base, self.server, self.folder, self.bodies = base, server, folder, bodies
        self.connections = connections
        self.requests = self.non_2xx = 0
        self.seconds = self.cpu = 0.0
        self.p50: list[float] = []
        self.p99: list[float] = []

    def load(self, tag: str, seconds: int) -> None:
        script = write_script(self.folder, self.bodies, tag, seconds)
        cpu_before = tree_cpu_seconds(self.server.pid)
        result = run_wrk(
            self.base + "/webhooks/shopify", script, duration=seconds, connections=self.connections
        )
        self.cpu += tree_cpu_seconds(self.server.pid) - cpu_before
        self.requests += result["requests"]
        self.non_2xx += result["non_2xx"]
        self.seconds += result["requests"] / result["rps"]
        self.p50.append(result["p50_ms"])
        self.p99.append(result["p99_ms"])

    def warm(self, tag: str) -> None:
        """Two seconds of load nobody counts: connections, pools and caches filled."""
        run_wrk(
            self.base + "/webhooks/shopify",
            write_script(self.folder, self.bodies, f"warm-{tag}", 2),
            duration=2,
            connections=self.connections,
        )

    def add(self, other: Target) -> None:
        """Count ``other``'s slices as this target's own (the empty endpoint's paired slices)."""
        for name in ("requests", "non_2xx", "seconds", "cpu"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.p50 += other.p50
        self.p99 += other.p99

    def row(self, label: str, baseline: Target | None, rate: dict) -> list:
        """rps, the slices' median p50 and worst p99, ratio to ``baseline``, CPU per request."""
        rps = self.requests / self.seconds
        ratio = rps / (baseline.requests / baseline.seconds) if baseline else 1.0
        return [
            label,
            rps,
            statistics.median(self.p50),
            max(self.p99),
            f"{ratio:.2f}",
            f"{self.cpu * 1000 / self.requests:.2f}",
            rate["p50_ms"],
            rate["p99_ms"],
        ]


def alternate(empty: Target, target: Target, tag: str, args) -> Target:
    """``target`` loaded in --rounds slices alternating with the empty endpoint (both servers
    up), so a ratio compares the two under the same background load of a shared machine;
    the empty endpoint's slices beside them."""
    pair = Target(empty.base, empty.server, target.folder, target.bodies, args.connections)
    slice_seconds = max(1, round(args.duration / args.rounds))
    for index in range(args.rounds):
        pair.load(f"empty-{tag}-{index}", slice_seconds)
        target.load(f"{tag}-{index}", slice_seconds)
    return pair


def measure_receiver(label, backend, redis_url, folder, bodies, args, empty: Target, extra):
    """One table row: the receiver on a fresh ``backend`` database, then at --rate.

    Loaded in slices alternating with the empty endpoint (``alternate``).
    """
    gconf = {"workers": args.workers, "threads": args.threads}
    tag = f"{backend}-{len(list(folder.glob('*.log')))}"
    with (
        database(backend) as url,
        web_server(
            aftersale_env(url, redis_url, folder / tag, **extra),
            log_path=folder / f"{tag}.log",
            cwd=extra.get("PYTHONPATH", ROOT),  # the current folder comes first on sys.path
            **gconf,
        ) as (base, server),
    ):
        wait_ready(base)
        real = Target(base, server, folder, bodies, args.connections)
        real.warm(tag)
        time.sleep(1)  # the warm-up's last requests are committed before counting
        before = count_deliveries(url)
        pair = alternate(empty, real, tag, args)
        time.sleep(1)
        stored = count_deliveries(url) - before
        rate = fixed_rate(base, bodies, args.rate, args.rate_seconds)
    empty.add(pair)
    answered = real.requests - real.non_2xx
    # wrk stops counting with requests still in flight: those are stored but not counted
    check = (
        "ok: every 200 stored"
        if answered <= stored <= answered + args.connections * args.rounds
        else f"MISMATCH stored {stored} answered {answered}"
    )
    return [*real.row(label, pair, rate), f"{stored} stored, {real.non_2xx} non-2xx, {check}"]


def measure_empty_on_granian(redis_url, folder, bodies, args, empty: Target) -> list:
    """Reference row: the same empty endpoint on the receiver's server (granian).

    The target compares the receiver with the empty endpoint under gunicorn; this
    row says how much of the gap the server closes on its own, so the table shows
    both what the target asks and what the app itself costs.
    """
    gconf = {"workers": args.workers, "threads": args.threads}
    with (
        database("sqlite") as url,
        granian_wsgi(
            "bench.empty_app:create_app",
            aftersale_env(url, redis_url, folder / "empty-granian"),
            log_path=folder / "empty-granian.log",
            **gconf,
        ) as (base, server),
    ):
        reference = Target(base, server, folder, bodies, args.connections)
        reference.warm("empty-granian")
        pair = alternate(empty, reference, "empty-granian", args)
        rate = fixed_rate(base, bodies, args.rate, args.rate_seconds)
    return [*reference.row("empty Flask endpoint on granian (reference)", pair, rate), "-"]


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
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="slices of --duration per target, alternating with the empty endpoint",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout of the code (e.g. `git archive` of an older commit, unpacked):"
        " its receiver is measured too, in the same run, for a before/after table",
    )
    args = parser.parse_args()

    bodies = OrderBodies()
    body = bodies.body(0)
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
            empty = Target(base, server, folder, bodies, args.connections)
            empty.warm("empty")
            empty_rate = fixed_rate(base, bodies, args.rate, args.rate_seconds)
            versions = [("aftersale receiver", {})]
            if args.before:
                root = import_root(args.before.resolve(), folder)
                versions.insert(0, ("before: receiver", {"PYTHONPATH": str(root)}))
            reference = measure_empty_on_granian(redis_url, folder, bodies, args, empty)
            for backend in backends:
                for label, extra in versions:
                    rows.append(
                        measure_receiver(
                            f"{label} ({backend})",
                            backend,
                            redis_url,
                            folder,
                            bodies,
                            args,
                            empty,
                            extra,
                        )
                    )
        rows.insert(0, [*empty.row("empty Flask endpoint (gunicorn)", None, empty_rate), "-"])
        rows.insert(1, reference)
    print_table(
        "Ingest: verify + durable store + hand-off, vs an empty Flask endpoint under gunicorn",
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
