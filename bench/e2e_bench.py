"""End to end: signed webhook -> receiver -> relay -> worker -> rule -> email accepted by SMTP.

    python bench/e2e_bench.py [--db sqlite|postgresql] [--rate 50] [--seconds 60]
                              [--burst-rate 300] [--burst-seconds 30] [--workers 2]

Runs the real processes as `aftersale serve` would (gunicorn web, RQ workers,
the scheduler/relay) against a private Redis, a fresh database and a local
SMTP sink in its own process, with the starter rule pack (a thank-you mail
on every order.created). Phase 1 posts orders/create at a steady --rate and
measures, per order, the time from the POST to the mail accepted by SMTP.
Phase 2 offers --burst-rate to find the sustained throughput. Every mail is
matched to its order: lost and doubled mails are counted, not assumed.
Prints one table, plus the peak memory of the web and worker processes.
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
    gunicorn,
    print_table,
    redis_server,
    wait_for_port,
    wait_ready,
)

ORDER = json.loads((ROOT / "tests" / "fixtures" / "shopify" / "orders__create.json").read_text())


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
    order = dict(ORDER)
    order["id"] = 10**12 + i
    order["name"] = f"#{run}{i}"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--burst-rate", type=float, default=300.0)
    parser.add_argument("--burst-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    mail_log = folder / "mail.log"
    smtp_port = free_port()
    rows, memory = [], {}
    with ExitStack() as stack:
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
        stack.enter_context(
            process(
                [
                    sys.executable,
                    str(ROOT / "bench" / "smtp_sink.py"),
                    str(smtp_port),
                    str(mail_log),
                ],
                env,
                folder / "smtp.log",
            )
        )
        wait_for_port(smtp_port)
        base, web = stack.enter_context(
            gunicorn(
                "aftersale.web:create_app()",
                env,
                workers=args.web_workers,
                threads=16,
                log_path=folder / "web.log",
            )
        )
        wait_ready(base)
        workers = [
            stack.enter_context(
                process(
                    [sys.executable, "-m", "aftersale", "worker"], env, folder / f"worker{i}.log"
                )
            )
            for i in range(args.workers)
        ]
        stack.enter_context(
            process([sys.executable, "-m", "aftersale", "scheduler"], env, folder / "scheduler.log")
        )
        time.sleep(2)

        print(f"phase 1: {args.rate:.0f}/s for {args.seconds:.0f}s ...", flush=True)
        steady = Load(base, "S")
        steady.offer(args.rate, args.seconds)
        wait_for_mail(mail_log, "S", len(steady.sent), 60)
        arrivals, doubled = read_mail(mail_log, "S")
        latencies = [(arrivals[n] - t) * 1000 for n, t in steady.sent.items() if n in arrivals]
        lost = len(steady.sent) - len(latencies)
        rows.append(
            [
                f"steady {args.rate:.0f}/s x {args.seconds:.0f}s",
                len(steady.sent),
                f"{args.rate:.0f}",
                f"{len(latencies) / args.seconds:.0f}",
                statistics.median(latencies) if latencies else 0,
                percentile(latencies, 99) if latencies else 0,
                max(latencies) if latencies else 0,
                lost,
                doubled,
                dict(steady.status),
            ]
        )

        print(f"phase 2: {args.burst_rate:.0f}/s for {args.burst_seconds:.0f}s ...", flush=True)
        burst = Load(base, "B")
        began = time.time()
        burst.offer(
            args.burst_rate, args.burst_seconds, start_index=10**6
        )  # new orders, not phase 1 repeats
        offered_for = time.time() - began
        wait_for_mail(mail_log, "B", len(burst.sent), 300)
        arrivals, doubled = read_mail(mail_log, "B")
        times = sorted(arrivals.values())
        lost = len(burst.sent) - len(arrivals)
        # sustained rate: mails per second between the 10th and 90th percentile arrivals
        if len(times) > 20:
            lo, hi = times[len(times) // 10], times[9 * len(times) // 10]
            sustained = (0.8 * len(times)) / max(hi - lo, 1e-6)
        else:
            sustained = 0.0
        latencies = [(arrivals[n] - t) * 1000 for n, t in burst.sent.items() if n in arrivals]
        rows.append(
            [
                f"burst {args.burst_rate:.0f}/s x {args.burst_seconds:.0f}s",
                len(burst.sent),
                f"{len(burst.sent) / offered_for:.0f}",
                f"{sustained:.0f}",
                statistics.median(latencies) if latencies else 0,
                percentile(latencies, 99) if latencies else 0,
                max(latencies) if latencies else 0,
                lost,
                doubled,
                dict(burst.status),
            ]
        )
        stages = stage_latencies(url)
        memory["web (peak RSS per gunicorn worker)"] = max(
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
        "Where the time goes (all webhooks of both phases, from the database's timestamps)",
        ["hop", "p50 ms", "p99 ms"],
        stages,
    )
    print_table("Memory", ["process", "MB"], [[k, v] for k, v in memory.items()])
    print(f"logs in {folder}")


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
