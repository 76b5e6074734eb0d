"""Never miss an event: orders the platform changed, fed through the webhook pipeline.

Webhooks get lost (WooCommerce never retries and disables a webhook on the
7th failure in a row; Shopify drops a subscription that keeps failing; store
plugins sometimes never fire). A reconcile run asks the platform's API for
the orders changed since the shop's cursor (``store/syncs.py``), page by page,
turns each into the deliveries the platform would have sent (the connector's
``orders`` module), and stores and processes them exactly like webhooks,
marked ``source: reconcile``. Events and actions are keyed, so an order
already seen through a webhook produces nothing new and a missed one produces
exactly the events it should have. The cursor advances after each full page.

A backfill (``aftersale backfill``) is the same walk from a given date, with
its own rules: one rule, none (``--history-only``: past orders become the
history that customer facts are computed from), and a late policy; a dry run
does it all in a transaction that is rolled back, and counts what it planned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy import func, select, update

from aftersale.connectors import get_connector
from aftersale.core import logs
from aftersale.core.errors import PermanentError
from aftersale.core.events import iso
from aftersale.store import deliveries as delivery_store
from aftersale.store import shops as shop_store
from aftersale.store import state as state_store
from aftersale.store import syncs
from aftersale.store.queues import hand_off_actions
from aftersale.store.tables import actions, deliveries, events
from aftersale.workers import shop_access
from aftersale.workers.processing import process_one

log = logs.get_logger("workers.reconcile")
#: the first run of a shop looks this far back (the cursor takes over after it)
FIRST_LOOKBACK = timedelta(days=2)
#: each run starts a little before the cursor: platforms' "modified after" are exclusive
#: and second-grained, and a repeat is harmless
OVERLAP = timedelta(minutes=2)


@dataclass
class RunSummary:
    """What one reconcile or backfill run did, stored with the shop's sync row."""

    source: str
    since: str | None = None
    pages: int = 0
    orders: int = 0
    deliveries: int = 0  # stored and processed: each is news to Aftersale
    duplicates: int = 0  # this exact order version was fed before
    events: int = 0  # events that were new (the rest were already known from webhooks)
    actions: int = 0  # actions planned by those events
    cursor: str | None = None
    repaired: list[str] = field(default_factory=list)  # webhooks re-created or re-enabled
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Walk:
    """How to walk a shop's orders: from when, judged by which rules, shown how."""

    source: str = "reconcile"
    since: datetime | None = None
    ruleset: object | None = None  # None: the loaded rules
    #: advance the shop's reconcile cursor (a backfill from an old date does not)
    move_cursor: bool = True
    #: called after each page with (orders so far, the page's last change)
    progress: Callable[[int, datetime | None], None] | None = None
    sleep: Callable[[float], None] = time.sleep


def reconcile_shop(runtime, shop_id: int, walk: Walk | None = None) -> RunSummary:
    """Walk the orders the shop's platform changed since the cursor; what was done."""
    walk = walk or Walk()
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        shop = shop_store.get_shop(conn, shop_id)
        syncs.start(conn, shop_id, now)
        sync = syncs.get(conn, shop_id)
    since = walk.since or _start_of(sync, now)
    summary = RunSummary(source=walk.source, since=iso(since))
    with logs.bound(shop=shop.domain, platform=shop.platform, run=walk.source):
        log.info("reconcile.started", since=iso(since))
        try:
            _walk(runtime, shop, since, walk, summary)
        except Exception as exc:
            summary.error = logs.describe_error(exc, limit=500)
            log.warning("reconcile.failed", error=summary.error, **_counts(summary))
            _finish(runtime, shop_id, "failed", summary)
            raise
        _finish(runtime, shop_id, "ok", summary)
        log.info("reconcile.finished", **_counts(summary))
    return summary


def _start_of(sync, now: datetime) -> datetime:
    if sync is None or sync.cursor is None:
        return now - FIRST_LOOKBACK
    return sync.cursor - OVERLAP


def _walk(runtime, shop, since: datetime, walk: Walk, summary: RunSummary) -> None:
    connector = get_connector(shop.platform)
    listing = connector.orders if connector else None
    if listing is None:
        raise PermanentError(f"{shop.platform} has no order listing to reconcile from")
    access = shop_access.current(runtime, shop)  # a Shopify token renewed when due
    session = runtime.platform_session()
    for page in listing.order_pages(access, session, since, sleep=walk.sleep):
        summary.pages += 1
        last = None
        for order in page.records:
            if not isinstance(order, dict):
                continue
            _feed_order(runtime, shop, listing, order, since, walk, summary)
            version = listing.order_version(order)
            last = max(last, version) if last and version else (version or last)
        if last is not None:
            summary.cursor = iso(last)
            if walk.move_cursor:
                with runtime.engine.begin() as conn:
                    syncs.advance(conn, shop.id, last, runtime.clock.now())
        if walk.progress:
            walk.progress(summary.orders, last)
        log.info("reconcile.page", page=summary.pages, **_counts(summary))


def listed_order_ref(shop, listing, order: dict) -> str | None:
    """The id of a listed order, read as its connector reads the listing's order topic."""
    return get_connector(shop.platform).order_ref(listing.ORDER_TOPIC, order)


def _feed_order(runtime, shop, listing, order: dict, since, walk: Walk, summary) -> None:
    """Store and process the deliveries one listed order stands for."""
    summary.orders += 1
    order_ref = listed_order_ref(shop, listing, order)
    with runtime.engine.connect() as conn:
        known = state_store.lock_order(conn, shop.id, order_ref).known if order_ref else False
    version = iso(listing.order_version(order)) or "unknown"
    for topic, payload in listing.as_deliveries(order, known=known, since=since):
        resource = payload.get("id") if isinstance(payload, dict) else None
        key = f"{walk.source}:{topic}:{order_ref}:{resource}:{version}"
        delivery_pk = _store(runtime, shop.id, topic, key, payload, walk.source)
        if delivery_pk is None:
            summary.duplicates += 1
            continue
        summary.deliveries += 1
        result = process_one(runtime, delivery_pk, ruleset=walk.ruleset)
        new_events, new_actions = _produced(runtime, delivery_pk)
        summary.events += new_events
        summary.actions += new_actions
        hand_off_actions(runtime, result.due_actions)


def _store(runtime, shop_id: int, topic: str, key: str, payload, source: str) -> int | None:
    """One delivery row, ``queued`` at once (this run processes it, not the relay)."""
    now = runtime.clock.now()
    row = delivery_store.NewDelivery(
        shop_id=shop_id,
        topic=topic,
        dedupe_key=key[:255],
        delivery_id=key[:128],
        event_id=None,
        api_version=None,
        triggered_at=now,
        received_at=now,
        headers={},
        body=orjson.dumps(payload),
    )
    with runtime.engine.begin() as conn:
        (delivery_pk,) = delivery_store.insert_many(conn, [row])
        if delivery_pk is not None:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_pk)
                .values(status="queued", source=source)
            )
    return delivery_pk


def _produced(runtime, delivery_pk: int) -> tuple[int, int]:
    """(events, actions) a processed delivery produced: its new events and what they planned."""
    with runtime.engine.connect() as conn:
        event_ids = select(events.c.id).where(events.c.delivery_id == delivery_pk)
        n_events = conn.execute(
            select(func.count()).select_from(events).where(events.c.delivery_id == delivery_pk)
        ).scalar_one()
        n_actions = conn.execute(
            select(func.count()).select_from(actions).where(actions.c.event_id.in_(event_ids))
        ).scalar_one()
    return n_events, n_actions


def _finish(runtime, shop_id: int, status: str, summary: RunSummary) -> None:
    with runtime.engine.begin() as conn:
        syncs.finish(conn, shop_id, status, summary.as_dict(), runtime.clock.now())


def _counts(summary: RunSummary) -> dict:
    return {
        "pages": summary.pages,
        "orders": summary.orders,
        "deliveries": summary.deliveries,
        "duplicates": summary.duplicates,
        "events": summary.events,
        "actions": summary.actions,
    }


def actions_since(conn, shop_id: int, first_id: int) -> dict[str, int]:
    """Actions per rule created with an id above ``first_id`` (a run's own)."""
    rows = conn.execute(
        select(actions.c.rule, func.count())
        .where(actions.c.shop_id == shop_id, actions.c.id > first_id)
        .group_by(actions.c.rule)
    ).all()
    return {rule: count for rule, count in rows}
