"""Keeping the catalog and the order lines as deliveries are processed, and syncing the catalog.

:func:`apply` runs inside a delivery's transaction, beside the privacy
handling (workers/processing.py): product events update the shop's
``products``, order events replace the order's ``order_lines`` (the
goes-with model and repurchase cycles count them), a redaction unties the
customer from their lines. Webhooks, reconcile and backfill runs all pass
here, so the model learns from every order Aftersale stores.

:func:`sync_catalog` pages through the platform's product listing
(``connectors/<platform>/products.py``, polite with 429s) and stores every
product; run again, it writes the same rows (idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aftersale.connectors import get_connector
from aftersale.connectors.base import Normalized
from aftersale.core import logs
from aftersale.core.errors import PermanentError
from aftersale.store import catalog, planning
from aftersale.store import shops as shop_store
from aftersale.workers import shop_access

log = logs.get_logger("workers.shop_catalog")


def apply(conn, shop, result: Normalized, now: datetime, ruleset=None) -> None:
    """Keep products and order lines as this delivery's events say; a new order ends the
    pending ``repurchase_due`` reminders of ``ruleset`` about the products it has again."""
    for event in result.events:
        if event.kind in ("product.created", "product.updated") and event.product:
            catalog.save_products(conn, shop.id, [event.product], now)
        elif event.kind == "product.deleted" and (event.product or {}).get("id"):
            catalog.delete_product(conn, shop.id, str(event.product["id"]))
            log.info("catalog.product_deleted", product=event.product["id"])
        elif event.kind == "customer.redact" and event.customer_ref:
            catalog.forget_customer(conn, shop.id, event.customer_ref)
    order_event = next((e for e in reversed(result.events) if e.order and e.order_ref), None)
    if order_event is not None:
        order = (result.state.order if result.state and result.state.order else None) or (
            order_event.order
        )
        kinds = {e.kind for e in result.events}
        kind = "order.cancelled" if "order.cancelled" in kinds else order_event.kind
        catalog.record_order(conn, shop.id, kind, order, order_event.customer_ref)
        if "order.created" in kinds and ruleset is not None:
            _bought_again(conn, shop, ruleset, order, order_event.customer_ref, now)


def _bought_again(conn, shop, ruleset, order: dict, customer_ref, now: datetime) -> None:
    rules = {r.name for r in ruleset.rules if r.wait_fallback is not None}
    refs = [i.get("product_id") for i in order.get("line_items") or [] if isinstance(i, dict)]
    ids = catalog.reminders_for(conn, shop.id, customer_ref, rules, refs, str(order.get("id")))
    cancelled = planning.skip_pending(
        conn, ids, now, "cancelled", f"the customer ordered the product again ({order.get('id')})"
    )
    if cancelled:
        log.info("actions.cancelled", action_ids=cancelled, by="repurchase")


@dataclass
class SyncSummary:
    pages: int = 0
    products: int = 0
    written: int = 0


def sync_catalog(
    runtime,
    shop_id: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int], None] | None = None,
) -> SyncSummary:
    """Store every product the shop's platform lists; what was done."""
    with runtime.engine.connect() as conn:
        shop = shop_store.get_shop(conn, shop_id)
    connector = get_connector(shop.platform)
    listing = connector.products if connector else None
    if listing is None:
        raise PermanentError(f"{shop.platform} has no product listing to sync the catalog from")
    access = shop_access.current(runtime, shop)
    summary = SyncSummary()
    with logs.bound(shop=shop.domain, platform=shop.platform):
        for page in listing.product_pages(access, runtime.platform_session(), sleep=sleep):
            summary.pages += 1
            items = [
                listing.canonical_product(record)
                for record in page.records
                if isinstance(record, dict)
            ]
            summary.products += len(items)
            with runtime.engine.begin() as conn:
                summary.written += catalog.save_products(conn, shop.id, items, runtime.clock.now())
            if progress:
                progress(summary.products)
        log.info(
            "catalog.synced",
            pages=summary.pages,
            products=summary.products,
            written=summary.written,
        )
    return summary
