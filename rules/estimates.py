"""Planning estimated deliveries, and calling them off when a real signal comes first.

For a store with no delivery signal (no tracking service, no ``delivered``
order status), the store owner may set days after shipping per destination
country (``delivery.estimated_delivery``, off by default). Every parcel that
ships then gets a pending estimate (``store/estimates.py``); the scheduler
emits ``shipment.delivered`` with ``estimated: true`` when it is due
(``workers/estimates.py``).

A real signal wins: any real ``shipment.*`` event of the parcel cancels its
estimate (the store evidently tracks it), and so do ``order.delivered`` and
``order.cancelled`` for the whole order. A parcel the store removed or
cancelled loses its estimate too. If the real signal comes after the
estimate was emitted, the two are one delivery fact (same event key), so
nothing is sent twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aftersale.connectors import shipments as ledger
from aftersale.core import logs
from aftersale.core.events import Event
from aftersale.core.platform import DeliverySettings, OrderState
from aftersale.store import estimates as estimate_store

log = logs.get_logger("rules.estimates")
#: events after which the order's parcels may need an estimate
SHIPPING_KINDS = frozenset({"fulfillment.created", "order.fulfilled"})
#: events that end every estimate of the order
ORDER_ENDS = frozenset({"order.delivered", "order.cancelled"})


def follow(
    conn, shop_id: int, delivery: DeliverySettings, events: list[Event], state, now: datetime
) -> None:
    """Plan and cancel estimates after one delivery's events (real ones only)."""
    real = [e for e in events if not e.source.get("estimated")]
    for event in real:
        if event.kind in ORDER_ENDS and event.order_ref:
            _cancel(conn, shop_id, f"real {event.kind}", now, order_ref=event.order_ref)
        elif event.kind.startswith("shipment.") and event.fulfillment_ref:
            refs = [event.fulfillment_ref]
            _cancel(conn, shop_id, f"real {event.kind}", now, fulfillment_refs=refs)
    if state is None or not state.order:
        return
    dropped = [
        fid for fid in (state.extra.get("fulfillments") or {}) if fid not in ledger.live(state)
    ]
    if dropped:
        _cancel(conn, shop_id, "parcel removed or cancelled", now, fulfillment_refs=dropped)
    if delivery.estimates and any(e.kind in SHIPPING_KINDS for e in real):
        _plan(conn, shop_id, delivery, state, now)


def _plan(conn, shop_id: int, delivery: DeliverySettings, state: OrderState, now) -> None:
    """An estimate for every parcel on the order that shipped and has no signal of its own."""
    order = state.order
    country = (order.get("shipping_address") or {}).get("country_code")
    days = delivery.days_to(country)
    if days is None or (order.get("status") == "cancelled"):
        return
    for fid, row in ledger.live(state).items():
        if row.get("kind") or ledger.is_delivered(row):
            continue  # a real signal arrived already
        shipped = ledger.seen_at({"at": (row.get("data") or {}).get("created_at")}) or (
            ledger.seen_at(row)
        )
        if shipped is None:
            continue  # registered, not shipped
        due = shipped + timedelta(days=days)
        if estimate_store.plan(conn, shop_id, str(order["id"]), fid, due, now):
            log.info("delivery.estimate_planned", fulfillment=fid, due_at=due, country=country)


def _cancel(conn, shop_id: int, note: str, now, **which) -> None:
    cancelled = estimate_store.cancel(conn, shop_id, note, now, **which)
    if cancelled:
        log.info("delivery.estimate_cancelled", count=cancelled, reason=note)
