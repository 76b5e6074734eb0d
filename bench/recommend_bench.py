"""Recommendations benchmark: offline quality against a popularity baseline, and speed.

    python bench/recommend_bench.py [--orders 50000] [--lines 1000000] [--db sqlite]

1. Quality. A seeded generator makes a store (``--orders`` orders) with planted
   patterns: products that go with others (an accessory is bought with its main
   product, or in a later order), consumables bought again on their own cycle,
   and a long tail of popularity. Each customer's last order is hidden; the model
   is counted from the rest (store/recommend.py, the SQL the scheduler runs), and
   for each customer three products are recommended from their previous order
   (store/goes_with.py, as a mail would) and, as the baseline, the three best
   sellers they do not own. A hit is a recommended product in the hidden order.
2. Recompute: the model of a store of ``--lines`` order lines, timed.
3. Lookup: one recommendation at send time (pairs, exclusions, fallback), timed.

Targets (issue 25): the learned model beats the popularity baseline; recompute of
1,000,000 order lines under 30 s; a lookup under 2 ms.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, print_table

START = datetime(2024, 1, 1, tzinfo=UTC)
TYPES = 40
BATCH = 20000


@dataclass
class Store:
    """A generated store: its catalog and each customer's orders, oldest first."""

    products: list[dict]
    orders: dict[str, list[dict]] = field(default_factory=dict)  # customer -> orders

    @property
    def order_count(self) -> int:
        return sum(len(o) for o in self.orders.values())


def generate(orders: int, seed: int, lines: int = 0) -> Store:
    """A store with ``orders`` orders (or more, until it has ``lines`` order lines), the
    same for the same seed."""
    rnd = random.Random(seed)
    n_products = max(200, orders // 25)
    products = [
        {
            "id": f"p{i}",
            "title": f"Product {i}",
            "price": f"{rnd.randint(5, 200)}.00",
            "product_type": f"type-{i % TYPES}",
            "tags": [f"tag-{rnd.randrange(60)}"],
        }
        for i in range(n_products)
    ]
    refs = [p["id"] for p in products]
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(n_products)]
    rnd.shuffle(weights)
    # planted patterns: two accessories per main product; consumables with a cycle
    mains = rnd.sample(refs, n_products // 3)
    accessories = {m: rnd.sample(refs, 2) for m in mains}
    cycles = {r: rnd.randint(20, 90) for r in rnd.sample(refs, n_products // 10)}
    cumulative = list(itertools.accumulate(weights))  # rnd.choices re-adds them otherwise
    store = Store(products)
    customer = made = made_lines = 0
    while made < orders or made_lines < lines:  # running counts: re-summing is quadratic
        customer += 1
        history = _customer_orders(rnd, refs, cumulative, accessories, cycles)
        if not lines:
            history = history[: orders - made]
        store.orders[f"c{customer}"] = history
        made += len(history)
        made_lines += sum(len(order["items"]) for order in history)
    return store


def _customer_orders(rnd, refs, cumulative, accessories, cycles) -> list[dict]:
    day = rnd.uniform(0, 365)
    owned: dict[str, float] = {}  # product -> day last bought
    result = []
    for _ in range(rnd.choice((1, 2, 2, 3, 3, 4, 5, 6))):
        items = set()
        for ref, at in owned.items():  # consumables running out come back
            if ref in cycles and day - at >= cycles[ref] * 0.8 and rnd.random() < 0.8:
                items.add(ref)
        for ref in list(owned):  # what goes with what they have, bought later
            for extra in accessories.get(ref, ()):
                if extra not in owned and rnd.random() < 0.25:
                    items.add(extra)
        for ref in rnd.choices(refs, cum_weights=cumulative, k=rnd.randint(1, 2)):
            items.add(ref)
            for extra in accessories.get(ref, ()):  # ... or with it
                if rnd.random() < 0.5:
                    items.add(extra)
        result.append({"day": day, "items": sorted(items)})
        for ref in sorted(items):  # a set's order varies between runs; the store must not
            owned[ref] = day
        due = [cycles[r] for r in items if r in cycles]
        day += (min(due) if due else rnd.uniform(30, 120)) + rnd.uniform(-3, 3)
    return result


def load(engine, shop_id: int, store: Store, hide_last: bool) -> dict[str, dict]:
    """Store the catalog and the orders (the last of each customer's when ``hide_last``);
    the hidden orders, by customer."""
    from aftersale.store import catalog
    from aftersale.store.tables import order_lines

    now = datetime.now(UTC)
    hidden, rows = {}, []
    with engine.begin() as conn:
        catalog.save_products(conn, shop_id, store.products, now)
        for customer, history in store.orders.items():
            if hide_last and len(history) >= 2:
                hidden[customer] = history[-1]
                history = history[:-1]
            for n, order in enumerate(history):
                rows += catalog.line_rows(shop_id, _canonical(customer, n, order), customer)
                if len(rows) >= BATCH:
                    conn.execute(order_lines.insert(), rows)
                    rows = []
        if rows:
            conn.execute(order_lines.insert(), rows)
    return hidden


def _canonical(customer: str, n: int, order: dict) -> dict:
    at = START + timedelta(days=order["day"])
    return {
        "id": f"{customer}-{n}",
        "currency": "EUR",
        "created_at": at.isoformat(),
        "line_items": [
            {"product_id": ref, "quantity": 1, "price": "10.00"} for ref in order["items"]
        ],
    }


def evaluate(engine, shop_id: int, store: Store, hidden: dict, sample: int, seed: int):
    """Hit rate at 3 of the model and of the popularity baseline, and lookup times (ms)."""
    from sqlalchemy import select

    from aftersale.store import goes_with
    from aftersale.store.tables import product_stats

    rnd = random.Random(seed)
    customers = sorted(hidden)
    customers = rnd.sample(customers, min(sample, len(customers)))
    model = baseline = 0
    times = []
    with engine.connect() as conn:
        popular = list(
            conn.execute(
                select(product_stats.c.product_ref)
                .where(product_stats.c.shop_id == shop_id)
                .order_by(product_stats.c.orders.desc(), product_stats.c.product_ref)
                .limit(200)
            ).scalars()
        )
        for customer in customers:
            history = store.orders[customer][:-1]
            owned = {ref for order in history for ref in order["items"]}
            wanted = set(hidden[customer]["items"])
            began = time.perf_counter()
            found = goes_with.recommend(conn, shop_id, history[-1]["items"], customer, 3)
            times.append((time.perf_counter() - began) * 1000)
            model += bool(wanted & {r.product.product_ref for r in found})
            baseline += bool(wanted & set([r for r in popular if r not in owned][:3]))
    return model / len(customers), baseline / len(customers), len(customers), times


def recompute_time(engine, shop_id: int, min_support: int) -> tuple[float, object]:
    from aftersale.store import recommend

    began = time.perf_counter()
    with engine.begin() as conn:
        done = recommend.recompute(conn, shop_id, min_support, datetime.now(UTC))
    return time.perf_counter() - began, done


def new_shop(engine, domain: str) -> int:
    from aftersale.store import shops as shop_store

    with engine.begin() as conn:
        return shop_store.ensure_shop(conn, "shopify", domain, datetime.now(UTC))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=50000, help="orders of the quality store")
    parser.add_argument("--lines", type=int, default=1000000, help="order lines to recompute")
    parser.add_argument("--eval", type=int, default=5000, help="customers evaluated")
    parser.add_argument("--min-support", type=int, default=2)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()

    from aftersale.store.db import make_engine

    with database(args.db) as url:
        engine = make_engine(url)
        quality = generate(args.orders, args.seed)
        shop = new_shop(engine, "quality.example")
        hidden = load(engine, shop, quality, hide_last=True)
        trained, _ = recompute_time(engine, shop, args.min_support)
        hits, base, evaluated, times = evaluate(engine, shop, quality, hidden, args.eval, args.seed)

        # sized by the quality store's lines per order (the catalog grows with the orders),
        # and topped up until it has --lines lines
        lines_per_order = sum(len(o["items"]) for h in quality.orders.values() for o in h) / max(
            1, quality.order_count
        )
        big = generate(int(args.lines / lines_per_order), args.seed + 1, lines=args.lines)
        big_shop = new_shop(engine, "big.example")
        load(engine, big_shop, big, hide_last=False)
        seconds, done = recompute_time(engine, big_shop, args.min_support)
        lines = _count_lines(engine, big_shop)
        _, _, _, lookups = evaluate(engine, big_shop, big, _last_orders(big), 2000, args.seed)
        engine.dispose()

    print_table(
        f"recommendations ({args.db}, seed {args.seed})",
        ["measure", "value", "target"],
        [
            ["orders in the quality store", quality.order_count, ">= 50,000"],
            ["customers evaluated (last order hidden)", evaluated, ""],
            ["hit rate at 3, learned model", f"{hits:.3f}", "> baseline"],
            ["hit rate at 3, most popular not owned", f"{base:.3f}", ""],
            ["model recount of the quality store (s)", trained, ""],
            ["order lines recounted", lines, ">= 1,000,000"],
            [f"recount: {done.pairs:,} pairs, {done.cycles:,} cycles (s)", seconds, "< 30"],
            ["lookup at send time, median (ms)", statistics.median(lookups), "< 2"],
            ["lookup at send time, p95 (ms)", _p95(lookups), ""],
            ["lookup, quality store, median (ms)", statistics.median(times), "< 2"],
        ],
    )
    return 0


def _last_orders(store: Store) -> dict:
    return {c: h[-1] for c, h in store.orders.items() if len(h) >= 2}


def _count_lines(engine, shop_id: int) -> int:
    from sqlalchemy import func, select

    from aftersale.store.tables import order_lines

    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(order_lines).where(order_lines.c.shop_id == shop_id)
        ).scalar_one()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.95)] if ordered else 0.0


if __name__ == "__main__":
    sys.exit(main())
