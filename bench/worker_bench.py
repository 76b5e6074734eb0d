"""Worker and scheduler benchmark: one command, one table.

    python bench/worker_bench.py [--db sqlite|postgresql|both] [--emails 3000]
                                 [--scheduled 1000000] [--due 10000] [--skip-scheduler]
                                 [--redis-queued 1000000] [--profile worker.prof]

1. Emails per second through ONE worker process (``aftersale worker --burst``,
   a real subprocess) against a local aiosmtpd server: N thank-you emails are
   planted as due actions for the orders/create fixture, the scheduler hands
   them to RQ, and the worker claims, re-checks, renders, sends and records
   each one. The rate is measured between the first and the last message the
   SMTP server accepts (start-up excluded; the wall time with start-up is
   shown too). Every action must end ``sent`` with a distinct Message-ID.
2. The scheduler dispatching D due actions out of M scheduled on PostgreSQL:
   M rows are inserted with generate_series (M - D due tomorrow, D due a
   minute ago), then one ``Scheduler.tick()`` claims the due ones with
   ``FOR UPDATE SKIP LOCKED`` in batches and enqueues them on a private
   Redis. The query plan is printed: cost must follow the due rows (index
   on status, due_at), not all rows.

The machine may be shared; numbers are indicative.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, aftersale_env, database, free_port, print_table, redis_server

EMAIL_TARGET = 300.0
SCHEDULER_TARGET_S = 10.0


class CountingSMTP:
    """aiosmtpd handler that counts accepted messages and when the first and last arrived."""

    def __init__(self):
        self.lock = threading.Lock()
        self.message_ids: list[str] = []
        self.first = self.last = None

    async def handle_DATA(self, server, session, envelope):
        now = time.monotonic()
        message_id = ""
        for line in envelope.content.split(b"\r\n", 60):
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
                break
        with self.lock:
            self.message_ids.append(message_id)
            self.first = self.first or now
            self.last = now
        return "250 2.0.0 queued"


def make_runtime(database_url: str, redis_url: str, instance: Path, mail_url: str, prefix: str):
    from aftersale.core.config import Config
    from aftersale.runtime import Runtime, install

    config = Config.from_env(
        {},
        instance_path=instance,
        database_url=database_url,
        redis_url=redis_url,
        mail_url=mail_url,
        secret_key="bench-secret-key",
        shopify_api_secrets=("bench-secret",),
        queue_prefix=prefix,
        log_level="WARNING",
    )
    runtime = Runtime(config)
    install(runtime)
    return runtime


def plant_emails(runtime, n: int, due_at) -> None:
    """``n`` distinct orders/create events (own order id, customer, prices) and one thank-you
    email action due at ``due_at`` for each, so no read or render can be shared between mails."""
    import json

    from aftersale.connectors.base import DeliveryMeta, OrderState
    from aftersale.connectors.shopify import ShopifyConnector
    from aftersale.store import events as event_store
    from aftersale.store import planning
    from aftersale.store import shops as shop_store
    from aftersale.store import state as state_store

    now = runtime.clock.now()
    text = (ROOT / "tests/fixtures/shopify/orders__create.json").read_text()
    meta = DeliveryMeta(platform="shopify", shop="bench.myshopify.com", topic="orders/create")
    rows = []
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", "bench.myshopify.com", now)
        for i in range(n):
            payload = json.loads(text)
            payload["id"] = 10**12 + i
            payload["name"] = f"#B{i}"
            payload["customer"]["id"] = 10**11 + i
            payload["email"] = payload["customer"]["email"] = f"buyer{i}@example.com"
            cents = 1000 + (i * 7919) % 90000
            for item in payload["line_items"]:
                item["price"] = f"{cents / 100:.2f}"
            payload["total_price"] = payload["subtotal_price"] = f"{cents / 100:.2f}"
            (event,) = ShopifyConnector().normalize(meta, payload, OrderState()).events
            customer = state_store.remember_customer(conn, shop_id, event.customer, now)
            event = replace(event, customer=customer)
            event_id = event_store.insert_event(conn, shop_id, None, event, now)
            rows.append(
                {
                    "shop_id": shop_id,
                    "event_id": event_id,
                    "rule": "bench",
                    "step": 0,
                    "action_type": "email",
                    "params": {"template": "thank_you", "to": "customer"},
                    "category": "transactional",
                    "order_ref": event.order_ref,
                    "customer_ref": event.customer_ref,
                    "once_key": f"bench|{i}",
                    "due_at": due_at,
                    "cancel_on": [],
                }
            )
        planning.create(conn, rows, now)


def bench_worker(kind: str, emails: int, profile: Path | None = None) -> list:
    from aiosmtpd.controller import Controller
    from sqlalchemy import func, select

    from aftersale.store.tables import actions
    from aftersale.workers.scheduler import Scheduler

    handler = CountingSMTP()
    smtp = Controller(handler, hostname="127.0.0.1", port=free_port())
    smtp.start()
    instance = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    prefix = f"bench{os.getpid()}"
    try:
        with database(kind) as url, redis_server() as redis_url:
            mail_url = f"smtp://127.0.0.1:{smtp.port}"
            runtime = make_runtime(url, redis_url, instance, mail_url, prefix)
            due = runtime.clock.now() + timedelta(seconds=5)
            plant_emails(runtime, emails, due)
            report = Scheduler(runtime, batch=1000, max_batches=100).tick(
                due + timedelta(seconds=1)
            )
            assert report.actions_enqueued == emails, report
            env = aftersale_env(
                url,
                redis_url,
                instance,
                MAIL_URL=mail_url,
                QUEUE_PREFIX=prefix,
            )
            env["LOG_LEVEL"] = "WARNING"
            cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
            worker = subprocess.run(
                [sys.executable, *profiler, "-m", "aftersale", "worker", "--burst"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            wall = time.monotonic() - started
            cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
                cpu_before.ru_utime + cpu_before.ru_stime
            )
            if worker.returncode != 0:
                sys.exit(f"worker failed:\n{worker.stderr[-3000:]}")
            with runtime.engine.connect() as conn:
                sent = conn.execute(
                    select(func.count()).where(actions.c.status == "sent")
                ).scalar_one()
            runtime.close()
    finally:
        smtp.stop()
    unique = len(set(handler.message_ids))
    if sent != emails or unique != emails or len(handler.message_ids) != emails:
        sys.exit(f"{kind}: {sent} sent, {len(handler.message_ids)} received, {unique} unique")
    steady = (emails - 1) / (handler.last - handler.first)
    return [
        f"worker emails/s, {kind}",
        f"{steady:,.0f}",
        f"{emails / wall:,.0f} with start-up; worker CPU {cpu * 1000 / emails:.1f} ms/mail",
        f">= {EMAIL_TARGET:.0f}",
        "yes" if steady >= EMAIL_TARGET else "no",
        f"{emails} sent, {unique} distinct Message-IDs",
    ]


INSERT = """
INSERT INTO actions (shop_id, rule, step, action_type, params, category, status, due_at,
                     attempts, max_attempts, once_key, created_at, updated_at)
SELECT :shop, 'bench', 0, 'email', '{"template": "thank_you"}'::jsonb, 'transactional',
       'scheduled', CASE WHEN g <= :due THEN now() - interval '1 minute'
                         ELSE now() + interval '1 day' + g * interval '1 second' END,
       0, 8, 'bench|' || g, now(), now()
FROM generate_series(1, :total) AS g
"""


def bench_scheduler(scheduled: int, due: int) -> tuple[list, str]:
    from sqlalchemy import text

    from aftersale.store import shops as shop_store
    from aftersale.workers.scheduler import Scheduler

    instance = Path(tempfile.mkdtemp(prefix="bench-scheduler-"))
    with database("postgresql") as url, redis_server() as redis_url:
        runtime = make_runtime(url, redis_url, instance, "memory://", f"sched{os.getpid()}")
        now = runtime.clock.now()
        loaded = time.monotonic()
        with runtime.engine.begin() as conn:
            shop_id = shop_store.ensure_shop(conn, "shopify", "bench.myshopify.com", now)
            conn.execute(text(INSERT), {"shop": shop_id, "due": due, "total": scheduled})
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE actions"))
            plan = "\n".join(
                row[0]
                for row in conn.execute(
                    text(
                        "EXPLAIN ANALYZE SELECT id FROM actions WHERE status = 'scheduled'"
                        " AND due_at <= now() ORDER BY due_at LIMIT 1000 FOR UPDATE SKIP LOCKED"
                    )
                )
            )
        load_s = time.monotonic() - loaded
        scheduler = Scheduler(runtime, batch=1000, max_batches=max(20, due // 1000 + 1))
        started = time.monotonic()
        report = scheduler.tick(runtime.clock.now())
        elapsed = time.monotonic() - started
        jobs = runtime.queue("actions").count
        runtime.close()
    if report.actions_enqueued != due or report.errors:
        sys.exit(f"scheduler enqueued {report.actions_enqueued} of {due}: {report.errors}")
    row = [
        f"scheduler: {due:,} due of {scheduled:,} (postgresql)",
        f"{elapsed:.2f} s",
        f"{due / elapsed:,.0f} actions/s",
        f"< {SCHEDULER_TARGET_S:.0f} s",
        "yes" if elapsed < SCHEDULER_TARGET_S else "no",
        f"{jobs} RQ jobs; {scheduled:,} rows loaded in {load_s:.0f} s",
    ]
    return row, plan


#: what each part of a mail's cost is, as (label, file suffix, function names) in a profile
PARTS = [
    ("database: statements", "sqlalchemy/engine/base.py", ("_execute_context",)),
    (
        "database: begin/commit/rollback",
        "sqlalchemy/engine/base.py",
        ("_begin_impl", "_commit_impl", "_rollback_impl"),
    ),
    ("database: pool checkout", "sqlalchemy/engine/base.py", ("__init__",)),
    ("render (Jinja, catalogs)", "workers/render.py", ("render",)),
    ("compose (MIME, CSS inlining)", "workers/compose.py", ("compose_email",)),
    ("SMTP (sendmail)", "smtplib.py", ("sendmail",)),
    ("logging (structlog)", "structlog/_base.py", ("_proxy_to_logger",)),
    ("metrics (prometheus)", "prometheus_client/metrics.py", ("inc", "observe", "labels")),
]


def breakdown(profile: Path, emails: int) -> list[list]:
    """Per-mail cost by part from the worker's cProfile (cumulative times; profiled, so
    slower than the real run, but in proportion)."""
    import pstats

    stats = pstats.Stats(str(profile)).stats

    def total(suffix: str, names: tuple) -> tuple[float, int]:
        found = [v for k, v in stats.items() if k[0].endswith(suffix) and k[2] in names]
        return sum(v[3] for v in found), sum(v[1] for v in found)

    whole, _ = total("workers/jobs.py", ("run_actions",))
    rows = [["whole run of a job, per mail", f"{whole * 1000 / emails:.2f}", "100%", ""]]
    for label, suffix, names in PARTS:
        seconds, calls = total(suffix, names)
        share = f"{100 * seconds / whole:.0f}%" if whole else "-"
        rows.append([label, f"{seconds * 1000 / emails:.2f}", share, f"{calls / emails:.1f}"])
    return rows


def bench_redis_memory(queued: int) -> list:
    """Redis memory taken by ``queued`` actions handed to RQ (due now, not yet run).

    Actions waiting for their time (scheduled, wait_for) live only in the database;
    Redis holds an action from the moment it is due until a worker takes its job, as
    one id in a job of up to ACTION_BATCH. This enqueues the jobs exactly as the
    scheduler does and reads ``used_memory`` before and after.
    """
    from redis import Redis

    from aftersale.store.queues import enqueue_actions

    instance = Path(tempfile.mkdtemp(prefix="bench-redis-mem-"))
    with redis_server() as redis_url:
        url = f"sqlite:///{instance / 'unused.db'}"
        runtime = make_runtime(url, redis_url, instance, "memory://", f"mem{os.getpid()}")
        redis = Redis.from_url(redis_url)
        before = redis.info("memory")["used_memory"]
        step = 100_000
        for start in range(1, queued + 1, step):
            enqueue_actions(runtime, list(range(start, min(start + step, queued + 1))))
        used = redis.info("memory")["used_memory"] - before
        jobs = runtime.queue("actions").count
        runtime.close()
    per_million = used / queued * 1_000_000 / 2**20
    return [
        f"Redis memory, {queued:,} queued actions",
        f"{per_million:,.0f} MB per 1M",
        f"{jobs:,} RQ jobs, {used / jobs:,.0f} B/job",
        "(measured)",
        "-",
        "scheduled/waiting actions take none: they wait in the database",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--scheduled", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--redis-queued", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--profile", type=Path, help="cProfile the worker into this file")
    args = parser.parse_args()

    rows, plan = [], None
    for kind in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        rows.append(bench_worker(kind, args.emails, args.profile))
    if args.redis_queued:
        rows.append(bench_redis_memory(args.redis_queued))
    if not args.skip_scheduler:
        row, plan = bench_scheduler(args.scheduled, args.due)
        rows.append(row)
    if plan:
        print("claim query plan (PostgreSQL):\n" + plan + "\n")
    if args.profile:
        print_table(
            f"Per-mail cost in the worker ({args.profile}, the last database run)",
            ["part", "ms per mail", "share", "calls per mail"],
            breakdown(args.profile, args.emails),
        )
    print_table(
        "Aftersale workers",
        ["measure", "result", "also", "target", "met", "checked"],
        rows,
    )


if __name__ == "__main__":
    main()
