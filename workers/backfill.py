"""Backfill: past orders through the rules (or into history only), with a dry run first.

``aftersale backfill --shop S --since 2026-10-01`` walks the shop's orders
changed since that date (workers/reconcile.py, ``source: backfill``). Actions
due in the past follow the rule's ``late`` policy; a rule without one gets
:data:`BACKFILL_GRACE` here (``--late send`` keeps them all), so a store does
not thank a customer for an order of last month. ``--history-only`` stores
the orders and their events with no rules at all: customer facts
(``orders_count``, ``total_spent``, purchases) then start from the store's real
past. ``--dry-run`` does the same walk in one transaction that is rolled
back, and counts per rule what it would plan, send and skip as late.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import SimpleNamespace

import orjson
from sqlalchemy import func, select

from aftersale.connectors import get_connector
from aftersale.core import logs
from aftersale.core.errors import PermanentError
from aftersale.core.events import iso
from aftersale.rules import pipeline
from aftersale.rules.model import RuleSet
from aftersale.store import shops as shop_store
from aftersale.store import state as state_store
from aftersale.store.tables import actions
from aftersale.workers import recommend_model, shop_access, shop_catalog
from aftersale.workers.reconcile import RunSummary, Walk, listed_order_ref, reconcile_shop

log = logs.get_logger("workers.backfill")
#: a backfilled action of a rule without ``late:`` is skipped when this overdue
BACKFILL_GRACE = timedelta(hours=1)
SAMPLE = 3


@dataclass
class RulePlan:
    """What one rule planned in a backfill: how many, how many skipped as late, examples."""

    planned: int = 0
    late: int = 0
    sample: list[dict] = field(default_factory=list)

    @property
    def to_send(self) -> int:
        return self.planned - self.late


@dataclass
class BackfillReport:
    summary: RunSummary
    rules: dict[str, RulePlan]
    dry_run: bool


def backfill_rules(
    ruleset: RuleSet, *, rule: str | None = None, history_only: bool = False, late: str = "skip"
) -> RuleSet:
    """The rules a backfill judges by: all, one (``rule``) or none (``history_only``)."""
    if history_only:
        chosen = []
    else:
        chosen = [r for r in ruleset.rules if rule is None or r.name == rule]
        if rule is not None and not chosen:
            names = ", ".join(sorted(r.name for r in ruleset.rules)) or "none"
            raise PermanentError(f"no rule named {rule!r} (loaded: {names})")
    if late == "skip":
        chosen = [
            r if r.skip_after is not None else replace(r, skip_after=BACKFILL_GRACE) for r in chosen
        ]
    return RuleSet.build(chosen, ruleset.settings, ruleset.templates, ruleset.folder)


def run_backfill(
    runtime,
    shop_id: int,
    since: datetime,
    *,
    rule: str | None = None,
    history_only: bool = False,
    late: str = "skip",
    dry_run: bool = False,
    progress=None,
    catalog: bool = False,
) -> BackfillReport:
    """``catalog``: sync the shop's products first, so the orders' line items get their
    product types and the goes-with model its catalog (issue 25); the model is recounted
    at the end either way."""
    ruleset = backfill_rules(runtime.rules, rule=rule, history_only=history_only, late=late)
    if dry_run:
        return _dry_run(runtime, shop_id, since, ruleset, progress)
    if catalog:
        shop_catalog.sync_catalog(runtime, shop_id)
    with runtime.engine.connect() as conn:
        first = conn.execute(select(func.max(actions.c.id))).scalar() or 0
    walk = Walk(
        source="backfill", since=since, ruleset=ruleset, move_cursor=False, progress=progress
    )
    summary = reconcile_shop(runtime, shop_id, walk)
    recommend_model.refresh_shop(runtime, shop_id)
    with runtime.engine.connect() as conn:
        plans = _plans(conn, shop_id, first, runtime.clock.now())
    return BackfillReport(summary, plans, dry_run=False)


def _dry_run(runtime, shop_id: int, since: datetime, ruleset, progress) -> BackfillReport:
    """The walk on one transaction, rolled back: nothing is stored, sent or handed to RQ."""
    now = runtime.clock.now()
    summary = RunSummary(source="backfill (dry run)", since=iso(since))
    with runtime.engine.connect() as conn:
        shop = shop_store.get_shop(conn, shop_id)
    # before the transaction: renewing a Shopify token writes, and on SQLite an open
    # transaction holding the write lock would make that wait forever
    access = shop_access.current(runtime, shop)
    listing = get_connector(shop.platform).orders
    # the pages first, then the judging: the transaction (on SQLite, the write lock that
    # webhooks wait for) is not held while the platform answers
    orders = []
    for page in listing.order_pages(access, runtime.platform_session(), since):
        summary.pages += 1
        orders += [order for order in page.records if isinstance(order, dict)]
        if progress and orders:
            progress(len(orders), listing.order_version(orders[-1]))
    with runtime.engine.connect() as conn:
        transaction = conn.begin()
        try:
            first = conn.execute(select(func.max(actions.c.id))).scalar() or 0
            for order in orders:
                _judge_order(conn, ruleset, shop, listing, order, since, now, summary)
            plans = _plans(conn, shop_id, first, now)
        finally:
            transaction.rollback()
    summary.actions = sum(p.planned for p in plans.values())
    return BackfillReport(summary, plans, dry_run=True)


def _judge_order(conn, ruleset, shop, listing, order, since, now, summary) -> None:
    summary.orders += 1
    order_ref = listed_order_ref(shop, listing, order)
    known = state_store.lock_order(conn, shop.id, order_ref).known if order_ref else False
    for topic, payload in listing.as_deliveries(order, known=known, since=since):
        row = SimpleNamespace(
            topic=topic,
            delivery_id=f"backfill:{topic}:{order_ref}",
            event_id=None,
            api_version=None,
            triggered_at=now,
            headers={},
            received_at=now,
            source="backfill",
        )
        # the stored body is what the pipeline reads in production: the same bytes here
        body = orjson.loads(orjson.dumps(payload))
        _, handled = pipeline.run_delivery(
            conn, ruleset, shop, pipeline.delivery_meta(shop, row), body, None, now
        )
        summary.deliveries += 1
        summary.events += sum(1 for h in handled if not h.duplicate)


def _plans(conn, shop_id: int, first_id: int, now: datetime) -> dict[str, RulePlan]:
    """Per rule: the actions created after ``first_id``, those already past their deadline."""
    plans: dict[str, RulePlan] = {}
    rows = conn.execute(
        select(actions.c.rule, actions.c.order_ref, actions.c.due_at, actions.c.deadline_at)
        .where(actions.c.shop_id == shop_id, actions.c.id > first_id)
        .order_by(actions.c.id)
    ).all()
    for row in rows:
        plan = plans.setdefault(row.rule, RulePlan())
        plan.planned += 1
        late = row.deadline_at is not None and row.deadline_at < now
        plan.late += late
        if len(plan.sample) < SAMPLE:
            plan.sample.append(
                {"order": row.order_ref, "due_at": iso(row.due_at), "late": bool(late)}
            )
    return plans
