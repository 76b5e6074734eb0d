"""Emitting estimated deliveries when they are due (a step of the scheduler's tick).

Each due estimate (``store/estimates.py``, planned by ``rules/estimates.py``)
is checked against the order's state, locked as a delivery would lock it: a
parcel that got a real signal, was delivered, removed or cancelled meanwhile
is dropped. Otherwise the parcel ledger announces ``shipment.delivered`` with
``estimated: true`` in the fulfillment and the event's source (and
``order.delivered`` when it was the order's last parcel), and the pipeline
stores and judges the events like any other. Their keys are those of a real
delivery, so a real signal arriving later is a duplicate and sends nothing.
"""

from __future__ import annotations

from aftersale.connectors import get_connector
from aftersale.connectors import shipments as ledger
from aftersale.connectors.base import DeliveryMeta
from aftersale.core import logs
from aftersale.rules import pipeline
from aftersale.store import estimates as estimate_store
from aftersale.store import shops as shop_store
from aftersale.store import state as state_store

log = logs.get_logger("workers.estimates")
#: the ``topic`` an estimated event's source names
TOPIC = "delivery.estimated"


def emit_due(runtime, now, batch: int) -> tuple[int, list[int]]:
    """Emit up to ``batch`` due estimates in one transaction: (estimates done, due action ids)."""
    due_actions: list[int] = []
    with runtime.engine.begin() as conn:
        rows = estimate_store.claim_due(conn, now, batch)
        for row in rows:
            with logs.bound(shop_id=row.shop_id, order=row.order_ref, estimate=row.id):
                due_actions += _emit(conn, runtime.rules, row, now)
    return len(rows), due_actions


def _emit(conn, ruleset, row, now) -> list[int]:
    shop = shop_store.get_shop(conn, row.shop_id)
    if shop is None or shop.status == "uninstalled":
        estimate_store.finish(conn, row.id, estimate_store.CANCELLED, now, "shop uninstalled")
        return []
    state = state_store.lock_order(conn, shop.id, row.order_ref)
    parcel = ledger.live(state).get(row.fulfillment_ref)
    reason = _why_not(conn, shop.id, state, parcel)
    if reason:
        estimate_store.finish(conn, row.id, estimate_store.CANCELLED, now, reason)
        log.info("delivery.estimate_dropped", fulfillment=row.fulfillment_ref, reason=reason)
        return []
    meta = DeliveryMeta(platform=shop.platform, shop=shop.domain, topic=TOPIC, received_at=now)
    fulfillment = {**(parcel.get("data") or {}), "id": row.fulfillment_ref}
    result = ledger.announce(
        get_connector(shop.platform),
        ledger.DELIVERED,
        "delivered",
        fulfillment,
        row.due_at,
        meta,
        state,
        estimated=True,
        order=state.order,
    )
    state_store.save_order(conn, shop.id, row.order_ref, result.state, now)
    estimate_store.finish(conn, row.id, estimate_store.EMITTED, now)
    due = []
    for event in result.events:
        event = pipeline.enrich(conn, shop.id, event, result.state, now)
        handled = pipeline.handle_event(conn, ruleset, shop, None, event, now)
        due += handled.due
    log.info(
        "delivery.estimated",
        fulfillment=row.fulfillment_ref,
        events=[e.kind for e in result.events],
        actions_due=len(due),
    )
    return due


def _why_not(conn, shop_id: int, state, parcel) -> str | None:
    """Why a due estimate is not emitted: the parcel's fate is known, or the customer erased."""
    if not state.order:
        return "order unknown"
    customer_ref = state.order.get("customer_id")
    customer = state_store.get_customer(conn, shop_id, customer_ref) if customer_ref else None
    if customer is not None and customer.redacted_at:
        return "customer erased"
    if (state.order or {}).get("status") == "cancelled":
        return "order cancelled"
    if parcel is None:
        return "parcel removed or cancelled"
    if ledger.is_delivered(parcel):
        return "delivered already"
    if parcel.get("kind"):
        return f"real signal {parcel['kind']}"
    return None
