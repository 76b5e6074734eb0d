"""Delivery processing in process: what one worker spends on each webhook before any mail.

    python bench/delivery_bench.py [--db sqlite|postgresql|both] [--deliveries 400]
                                   [--profile delivery.prof]

2 x N orders/create webhooks (distinct orders, customers and emails, the Shopify
fixture) are posted through the Flask app's receiver and stored; then
``process_one`` (claim, normalize, store the order and event, judge the rules, plan
the actions, finish) runs for each, in this process, on a fresh migrated database.
The first N warm the caches (compiled statements, templates of the rules); the next
N are timed: wall time and this process's CPU per delivery, and on PostgreSQL the
CPU its backends used meanwhile (read from /proc: the server runs on this machine;
a backend that exits during the run is not counted). ``--profile`` writes a
cProfile of a third run of N. The end-to-end bench's workers spend most of their time
here (docs/performance.md); this isolates it from RQ, Redis hand-offs and sending.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_SHOP, database, database_cpu_seconds, print_table, redis_server
from bench.worker_bench import make_runtime

SECRET = "bench-secret"


def post_orders(runtime, count: int) -> list[int]:
    """Post ``count`` signed orders/create webhooks; the stored delivery ids, in order."""
    from sqlalchemy import select

    from aftersale.store.tables import deliveries
    from aftersale.web import create_app
    from tests.helpers import load_fixture, shopify_headers

    app = create_app(runtime=runtime)
    client = app.test_client()
    order = load_fixture("shopify", "orders__create")
    for n in range(count):
        body = orjson.dumps(
            {
                **order,
                "id": order["id"] + n,
                "order_number": 5000 + n,
                "name": f"#{5000 + n}",
                "email": f"buyer{n}@example.com",
                "customer": {**order["customer"], "id": order["customer"]["id"] + n},
            }
        )
        headers = shopify_headers("orders/create", body, SECRET, shop=BENCH_SHOP)
        answer = client.post("/webhooks/shopify", data=body, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"the receiver answered {answer.status_code}")
    if not app.extensions["aftersale.receiver"].writer.drain():
        raise SystemExit("the delivery writer did not drain")
    with runtime.engine.connect() as conn:
        return [row.id for row in conn.execute(select(deliveries.c.id).order_by(deliveries.c.id))]


def bench(kind: str, count: int, profile: Path | None) -> list:
    from aftersale.workers.processing import process_one

    with redis_server() as redis_url, database(kind) as url:
        runtime = make_runtime(url, redis_url, Path(tempfile.mkdtemp()), "smtp://127.0.0.1:1", "d")
        ids = post_orders(runtime, count * (3 if profile else 2))
        for delivery_id in ids[:count]:
            process_one(runtime, delivery_id)
        timed = ids[count : 2 * count]
        server = database_cpu_seconds(runtime.engine)
        wall, cpu = time.perf_counter(), time.process_time()
        statuses = [process_one(runtime, delivery_id).status for delivery_id in timed]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if server is not None:
            server = database_cpu_seconds(runtime.engine) - server
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for delivery_id in ids[2 * count :]:
                process_one(runtime, delivery_id)
            profiler.disable()
            profiler.dump_stats(str(profile.with_suffix(f".{kind}{profile.suffix}")))
        runtime.close()
    processed = statuses.count("processed")
    return [
        kind,
        len(timed),
        f"{wall / len(timed) * 1000:.2f}",
        f"{cpu / len(timed) * 1000:.2f}",
        "-" if server is None else f"{server / len(timed) * 1000:.2f}",
        f"{len(timed) / wall:.0f}",
        f"{processed} of {len(timed)} processed",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--deliveries", type=int, default=400)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    rows = [bench(kind, args.deliveries, args.profile) for kind in kinds]
    print_table(
        "Delivery processing, one process (orders/create, starter rules)",
        [
            "database",
            "timed",
            "ms per delivery",
            "CPU ms per delivery",
            "database CPU ms",
            "deliveries/s",
            "check",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
