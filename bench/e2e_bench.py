"""End to end: signed webhook -> receiver -> relay -> worker -> rule -> email accepted by SMTP.

    python bench/e2e_bench.py [--db sqlite|postgresql] [--rate 50] [--seconds 60]
                              [--burst-rate 300] [--burst-seconds 30] [--workers 2]
                              [--kill-after 5] [--scale 1,2,4]

Runs the real processes as `aftersale serve` would (`aftersale web`, RQ workers,
the scheduler/relay) against a private Redis, a fresh database and a local
SMTP sink in its own process, with the starter rule pack (a thank-you mail
on every order.created). Phase 1 posts orders/create at a steady --rate and
measures, per order, the time from the POST to the mail accepted by SMTP.
Phase 2 offers --burst-rate to find the sustained throughput. Every mail is
matched to its order: lost and doubled mails are counted, not assumed.
Phase 3 kills one worker with SIGKILL during a steady load: the mails it held
wait out their short lease (workers/leases.py), so the max latency shows the
recovery bound, and nothing may be lost or doubled. Every order is distinct,
prices included. Prints one table, plus the peak memory of the web and worker
processes. ``--scale 1,2,4`` instead runs only the burst, once per worker
count on a fresh stack, and prints mails/s per worker process.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    SECRET,
    aftersale_env,
    database,
    free_port,
    print_table,
    redis_server,
    wait_for_port,
    wait_ready,
    web_server,
)

ORDER_TEXT = (ROOT / "tests" / "fixtures" / "shopify" / "orders__create.json").read_text()


@contextmanager
def process(args: list[str], env: dict, log_path: Path):
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def order_body(run: str, i: int) -> tuple[bytes, str]:
    """A distinct order of a distinct customer: its own id, name, prices and buyer (so no
    rendering can be reused, and no customer's order history grows with the run)."""
    order = json.loads(ORDER_TEXT)
    order["id"] = 10**12 + i
    order["name"] = f"#{run}{i}"
    order["customer"]["id"] = 10**11 + i
    order["email"] = order["customer"]["email"] = f"buyer-{run}{i}@example.com"
    cents = 1000 + (i * 7919) % 90000
    for item in order.get("line_items") or []:
        item["price"] = f"{cents / 100:.2f}"
    order["total_price"] = order["subtotal_price"] = f"{cents / 100:.2f}"
    body = json.dumps(order, separators=(",", ":"), ensure_ascii=False).encode()
    return body, order["name"]


class Load:
    """Open-loop load: POST at a fixed rate whatever the answers' latency; remember send times."""

    def __init__(self, base: str, run: str):
        self.base = base
        self.run = run
        self.sent: dict[str, float] = {}
        self.status = Counter()
        self.lock = threading.Lock()
        self.local = threading.local()

    def post(self, i: int) -> None:
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        body, name = order_body(self.run, i)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": base64.b64encode(
                hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
            ).decode(),
            "X-Shopify-Shop-Domain": "aftersale-demo.myshopify.com",
            "X-Shopify-API-Version": "2025-10",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        }
        started = time.time()
        try:
            code = session.post(
                f"{self.base}/webhooks/shopify", data=body, headers=headers, timeout=30
            ).status_code
        except requests.RequestException:
            code = "error"
        with self.lock:
            self.status[code] += 1
            if code == 200:
                self.sent[name] = started

    def offer(self, rate: float, seconds: float, start_index: int = 0) -> None:
        total = int(rate * seconds)
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=64) as pool:
            for n in range(total):
                delay = began + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self.post, start_index + n)


def read_mail(path: Path, prefix: str) -> tuple[dict[str, float], int]:
    """Arrival time per order name (first arrival) and how many arrived twice."""
    arrivals: dict[str, float] = {}
    doubled = 0
    if not path.exists():
        return arrivals, doubled
    for line in path.read_text().splitlines():
        arrived, _message_id, subject = line.split("\t", 2)
        name = subject.rsplit(" ", 1)[-1]
        if not name.startswith(f"#{prefix}"):
            continue
        if name in arrivals:
            doubled += 1
        else:
            arrivals[name] = float(arrived)
    return arrivals, doubled


def wait_for_mail(path: Path, prefix: str, expected: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(read_mail(path, prefix)[0]) >= expected:
            return
        time.sleep(0.5)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered))) - 1))]


def peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--burst-rate", type=float, default=300.0)
    parser.add_argument("--burst-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--scale",
        default="",
        help="comma-separated worker counts (e.g. 1,2,4): run only the burst once per count,"
        " each on a fresh stack, and print mails/s per worker process",
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        default=5.0,
        help="recovery phase: SIGKILL one worker this many seconds into a steady load (0: skip)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.scale:
        scale_out(args, [int(n) for n in args.scale.split(",")])
        return
    rows, memory = [], {}
    with ExitStack() as stack:
        base, web, workers, mail_log, url, folder = start_stack(stack, args, args.workers)
        print(f"phase 1: {args.rate:.0f}/s for {args.seconds:.0f}s ...", flush=True)
        rows.append(steady_phase(base, mail_log, args.rate, args.seconds))
        print(f"phase 2: {args.burst_rate:.0f}/s for {args.burst_seconds:.0f}s ...", flush=True)
        row, _ = burst_phase(base, mail_log, args.burst_rate, args.burst_seconds, "B")
        rows.append(row)
        if args.kill_after > 0 and len(workers) > 1:
            print(f"phase 3: a worker SIGKILLed {args.kill_after:.0f}s into {args.rate:.0f}/s")
            rows.append(recovery_phase(base, mail_log, args, workers[0]))
        stages = stage_latencies(url)
        memory["web (peak RSS per web worker)"] = max(
            (peak_rss_mb(p) for p in children(web.pid)), default=0
        )
        memory["worker (peak RSS per RQ worker)"] = max(peak_rss_mb(w.pid) for w in workers)
    print_table(
        f"End to end: webhook -> rule -> email accepted by SMTP ({args.db}, {args.workers} workers)",
        [
            "phase",
            "webhooks",
            "offered/s",
            "mails/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "lost",
            "doubled",
            "answers",
        ],
        rows,
    )
    print_table(
        "Where the time goes (all webhooks of all phases, from the database's timestamps)",
        ["hop", "p50 ms", "p99 ms"],
        stages,
    )
    print_table("Memory", ["process", "MB"], [[k, v] for k, v in memory.items()])
    print(f"logs in {folder}")


def start_stack(stack: ExitStack, args, n_workers: int):
    """Redis, a fresh database, the SMTP sink, ``aftersale web``, ``n_workers`` workers, the scheduler."""
    folder = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    mail_log = folder / "mail.log"
    smtp_port = free_port()
    redis_url = stack.enter_context(redis_server())
    url = stack.enter_context(database(args.db))
    env = aftersale_env(
        url,
        redis_url,
        folder / "instance",
        MAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        RULES_DIR=str(ROOT / "examples" / "starter"),
        LOG_LEVEL="WARNING",
    )
    sink = [sys.executable, str(ROOT / "bench" / "smtp_sink.py"), str(smtp_port), str(mail_log)]
    stack.enter_context(process(sink, env, folder / "smtp.log"))
    wait_for_port(smtp_port)
    base, web = stack.enter_context(
        web_server(
            env,
            workers=args.web_workers,
            threads=16,
            log_path=folder / "web.log",
        )
    )
    wait_ready(base)
    worker = [sys.executable, "-m", "aftersale", "worker"]
    workers = [
        stack.enter_context(process(worker, env, folder / f"worker{i}.log"))
        for i in range(n_workers)
    ]
    scheduler = [sys.executable, "-m", "aftersale", "scheduler"]
    stack.enter_context(process(scheduler, env, folder / "scheduler.log"))
    time.sleep(2)
    return base, web, workers, mail_log, url, folder


def steady_phase(base: str, mail_log: Path, rate: float, seconds: float) -> list:
    steady = Load(base, "S")
    steady.offer(rate, seconds)
    wait_for_mail(mail_log, "S", len(steady.sent), 60)
    arrivals, doubled = read_mail(mail_log, "S")
    latencies = [(arrivals[n] - t) * 1000 for n, t in steady.sent.items() if n in arrivals]
    return [
        f"steady {rate:.0f}/s x {seconds:.0f}s",
        len(steady.sent),
        f"{rate:.0f}",
        f"{len(latencies) / seconds:.0f}",
        *spread(latencies),
        len(steady.sent) - len(latencies),
        doubled,
        dict(steady.status),
    ]


def burst_phase(base: str, mail_log: Path, rate: float, seconds: float, run: str):
    """Offer ``rate`` for ``seconds``; (table row, sustained mails/s between the 10th and
    90th percentile arrivals)."""
    burst = Load(base, run)
    began = time.time()
    burst.offer(rate, seconds, start_index=10**6)  # new orders, not phase 1 repeats
    offered_for = time.time() - began
    wait_for_mail(mail_log, run, len(burst.sent), 300)
    arrivals, doubled = read_mail(mail_log, run)
    times = sorted(arrivals.values())
    sustained = 0.0
    if len(times) > 20:
        lo, hi = times[len(times) // 10], times[9 * len(times) // 10]
        sustained = (0.8 * len(times)) / max(hi - lo, 1e-6)
    latencies = [(arrivals[n] - t) * 1000 for n, t in burst.sent.items() if n in arrivals]
    row = [
        f"burst {rate:.0f}/s x {seconds:.0f}s",
        len(burst.sent),
        f"{len(burst.sent) / offered_for:.0f}",
        f"{sustained:.0f}",
        *spread(latencies),
        len(burst.sent) - len(arrivals),
        doubled,
        dict(burst.status),
    ]
    return row, sustained


def recovery_phase(base: str, mail_log: Path, args, victim) -> list:
    """Steady load for 20 s; one worker is SIGKILLed ``--kill-after`` seconds in. The mails
    it held wait for their lease (workers/leases.py): the max latency shows the bound."""
    load = Load(base, "K")
    seconds = 20.0
    killer = threading.Timer(args.kill_after, lambda: os.killpg(victim.pid, signal.SIGKILL))
    killer.start()
    load.offer(args.rate, seconds, start_index=2 * 10**6)
    killer.join()
    wait_for_mail(mail_log, "K", len(load.sent), 90)
    arrivals, doubled = read_mail(mail_log, "K")
    latencies = [(arrivals[n] - t) * 1000 for n, t in load.sent.items() if n in arrivals]
    return [
        f"worker killed at {args.kill_after:.0f}s, {args.rate:.0f}/s x {seconds:.0f}s",
        len(load.sent),
        f"{args.rate:.0f}",
        f"{len(latencies) / seconds:.0f}",
        *spread(latencies),
        len(load.sent) - len(latencies),
        doubled,
        dict(load.status),
    ]


def spread(latencies: list[float]) -> list[float]:
    """p50, p99 and max of ``latencies`` (ms); zeros when there are none."""
    if not latencies:
        return [0, 0, 0]
    return [statistics.median(latencies), percentile(latencies, 99), max(latencies)]


def scale_out(args, counts: list[int]) -> None:
    """The same burst through 1, 2, 4 ... worker processes, each count on a fresh stack."""
    rows = []
    for n in counts:
        print(f"burst {args.burst_rate:.0f}/s x {args.burst_seconds:.0f}s, {n} workers ...")
        with ExitStack() as stack:
            base, _web, workers, mail_log, _url, _folder = start_stack(stack, args, n)
            row, sustained = burst_phase(
                base, mail_log, args.burst_rate, args.burst_seconds, f"W{n}x"
            )
            rss = max(peak_rss_mb(w.pid) for w in workers)
        rows.append(
            [
                n,
                row[1],
                row[2],
                f"{sustained:.0f}",
                f"{sustained / n:.0f}",
                *row[4:8],
                row[8],
                f"{rss:.0f}",
            ]
        )
    print_table(
        f"Scale-out: one burst per worker count ({args.db}, {args.web_workers} web workers)",
        [
            "workers",
            "webhooks",
            "offered/s",
            "mails/s",
            "mails/s per worker",
            "p50 ms",
            "p99 ms",
            "max ms",
            "lost",
            "doubled",
            "worker MB",
        ],
        rows,
    )


def stage_latencies(database_url: str) -> list[list]:
    """Median and p99 of each hop a webhook takes, from the rows' own timestamps."""
    from sqlalchemy import select

    from aftersale.store.db import make_engine
    from aftersale.store.tables import actions, deliveries

    engine = make_engine(database_url)
    with engine.connect() as conn:
        hops = {
            "stored -> handed to RQ (relay)": [],
            "handed to RQ -> processed (rules, action planned)": [],
            "action planned -> queued": [],
            "queued -> claimed by a worker": [],
            "claimed -> sent (render, SMTP, record)": [],
        }
        delivery_rows = conn.execute(
            select(deliveries.c.received_at, deliveries.c.enqueued_at, deliveries.c.processed_at)
        ).all()
        for received, enqueued, processed in delivery_rows:
            if received and enqueued and processed:
                hops["stored -> handed to RQ (relay)"].append(enqueued - received)
                hops["handed to RQ -> processed (rules, action planned)"].append(
                    processed - enqueued
                )
        action_rows = conn.execute(
            select(
                actions.c.created_at,
                actions.c.queued_at,
                actions.c.started_at,
                actions.c.finished_at,
            ).where(actions.c.status == "sent")
        ).all()
        for created, queued, started, finished in action_rows:
            if created and queued and started and finished:
                hops["action planned -> queued"].append(queued - created)
                hops["queued -> claimed by a worker"].append(started - queued)
                hops["claimed -> sent (render, SMTP, record)"].append(finished - started)
    engine.dispose()
    table = []
    for hop, deltas in hops.items():
        millis = [d.total_seconds() * 1000 for d in deltas]
        table.append([hop, statistics.median(millis) if millis else 0, percentile(millis, 99)])
    return table


if __name__ == "__main__":
    main()
