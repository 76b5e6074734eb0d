"""Rules engine benchmark: compile time and events/s, and what the cost grows with.

    python bench/rules_bench.py [--rules 500] [--kinds 20] [--events 20000]

Generates rule files the way a large store would write them (conditions on
money, line items, tags, customer fields, with any/all/not, regex and time
comparisons; about one in twenty rules matches the sample event), loads and
compiles them with the real loader (YAML parsing, validation, condition
compilation), then evaluates a real canonical event (the Shopify
orders/create fixture through the connector) with ``rules.engine.plan`` on
one core. Rows show that the cost follows the rules listening to the event's
kind, not all rules: the same event against 0, 10, 50 and 200 rules of its
kind, each time alongside the full rule set on other kinds.

Targets (issue 9): compile 500 rules over 20 kinds in under 1 s; at least
20,000 events/s when few rules match.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table

ROOT = Path(__file__).resolve().parent.parent
OTHER_KINDS = [
    "order.paid",
    "order.fulfilled",
    "order.cancelled",
    "order.refunded",
    "order.delivered",
    "fulfillment.created",
    "shipment.in_transit",
    "shipment.out_for_delivery",
    "shipment.delivered",
    "shipment.failed",
    "shipment.attempted",
    "shipment.delayed",
    "return.requested",
    "return.approved",
    "return.closed",
    "customer.created",
    "customer.updated",
    "product.updated",
    "order.partially_fulfilled",
]
#: condition shapes; ``{n}`` varies per rule so no two rules are the same
CONDITIONS = [
    "order.total_price: {{gte: {big}}}",
    "order.line_items.sku: {{in: [SKU-{n}, SKU-{m}]}}",
    "order.line_items.product_type: {{in: [Boots-{n}, Shoes-{n}]}}",
    "order.tags: {{contains: vip-{n}}}",
    "customer.email: {{matches: '^team{n}@'}}",
    "order.shipping_address.country_code: {{in: [XA{n}, XB{n}]}}",
    "any: [{{order.currency: ZZ{n}}}, {{order.discount_codes: {{contains: CODE{n}}}}}]",
    "not: {{order.financial_status: {{in: [paid, pending, partially_refunded]}}}}",
    "order.created_at: {{older_than: {days}d}}",
]
MATCHING = "order.total_price: {gte: 1}"


def rule_yaml(name: str, kind: str, rng: random.Random, matches: bool) -> str:
    if matches:
        condition = MATCHING
    else:
        shape = rng.choice(CONDITIONS)
        condition = shape.format(
            n=rng.randint(1, 10**6),
            m=rng.randint(1, 10**6),
            big=rng.randint(10**6, 10**7),
            days=rng.randint(3000, 4000),
        )
    return (
        f"- name: {name}\n"
        f"  on: {kind}\n"
        f"  if:\n"
        f"    - {condition}\n"
        f"    - order.line_items.quantity: {{gte: 1}}\n"
        f"  wait: {rng.choice(['0m', '1h', '3d', '7d'])}\n"
        f"  once_per: order\n"
        f"  category: transactional\n"
        f"  do:\n"
        f"    - tag_order: [bench-{name}]\n"
    )


def write_rules(folder: Path, count: int, kinds: int, target_kind_rules: int, seed: int = 7):
    """``count`` rules: ``target_kind_rules`` on order.created, the rest spread over other kinds."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.yaml").write_text("default_locale: en\ntimezone: UTC\n")
    others = OTHER_KINDS[: max(1, kinds - 1)]
    texts: dict[str, list[str]] = {}
    for index in range(count):
        if index < target_kind_rules:
            kind = "order.created"
            matches = index % 20 == 0  # about one in twenty matches
        else:
            kind = others[index % len(others)]
            matches = False
        texts.setdefault(kind, []).append(rule_yaml(f"r{index}", kind, rng, matches))
    for kind, rules in texts.items():
        (folder / f"{kind.replace('.', '-')}.yaml").write_text("\n".join(rules))


def sample_event():
    from aftersale.workers.previews import events_from_payload

    payload = json.loads((ROOT / "tests/fixtures/shopify/orders__create.json").read_text())
    (event,) = events_from_payload("shopify", "orders/create", payload)
    return event


def measure(folder: Path, events: int):
    from aftersale.rules.engine import plan
    from aftersale.rules.loader import load_rules

    started = time.perf_counter()
    ruleset = load_rules(folder)
    compile_s = time.perf_counter() - started
    event = sample_event()
    now = datetime.now(UTC)
    for _ in range(200):  # warm up
        plan(ruleset, event, now)
    started = time.process_time()
    planned = 0
    for _ in range(events):
        planned += len(plan(ruleset, event, now))
    cpu = time.process_time() - started
    return ruleset, compile_s, events / cpu, planned // events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--kinds", type=int, default=20)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-rules-"))
    rows = []
    scenarios = [
        (
            f"{args.rules} rules / {args.kinds} kinds, {args.rules // args.kinds} on the event's kind",
            args.rules,
            args.rules // args.kinds,
        ),
        (f"{args.rules} rules, none on the event's kind", args.rules, 0),
        (f"{args.rules + 10} rules, 10 on the event's kind", args.rules + 10, 10),
        (f"{args.rules + 50} rules, 50 on the event's kind", args.rules + 50, 50),
        (f"{args.rules + 200} rules, 200 on the event's kind", args.rules + 200, 200),
        ("25 rules, all on the event's kind", 25, 25),
    ]
    for index, (label, count, on_kind) in enumerate(scenarios):
        folder = base / f"s{index}"
        write_rules(folder, count, args.kinds, on_kind)
        ruleset, compile_s, rate, planned = measure(folder, args.events)
        rows.append(
            [
                label,
                len(ruleset.rules),
                len(ruleset.for_kind("order.created")),
                f"{compile_s * 1000:.0f}",
                f"{rate:,.0f}",
                f"{1e6 / rate:.1f}",
                planned,
            ]
        )
        print(f"  {label}: compiled in {compile_s:.2f}s, {rate:,.0f} events/s", flush=True)
    print_table(
        "Rules engine: compile, then plan() for one orders/create event on one core",
        [
            "rule set",
            "rules",
            "on order.created",
            "compile ms",
            "events/s",
            "µs/event",
            "actions planned",
        ],
        rows,
    )
    print(f"rule files in {base}")


if __name__ == "__main__":
    main()
