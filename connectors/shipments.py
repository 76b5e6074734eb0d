"""The parcel ledger every connector keeps: which status of which parcel was announced, and when.

Tracking signals arrive at least once, in any order, and from more than one
source (Shopify's fulfillment and fulfillment-event topics, a WooCommerce
tracking plugin's order meta, a custom order status, an estimate made by the
scheduler). So the order's stored state keeps, per fulfillment
(``extra["fulfillments"]``), the last status announced, its time and whether
it means delivered, and a status becomes an event once, in order, never
backwards after delivery.

An event's key is ``<fulfillment id>:<kind>`` whatever its source, so an
estimated and a real delivery of one parcel are one delivery fact: the second
is a duplicate and plans nothing.

``order.delivered`` is emitted once every parcel still on the order is
delivered and, where the platform says which items each parcel holds
(``extra["items"]``: line item id -> quantity to deliver, removed and refunded
items left out), once every item quantity is covered by delivered parcels.
"""

from __future__ import annotations

from datetime import datetime

from aftersale.connectors.base import Normalized, OrderState
from aftersale.connectors.base import compact as _compact
from aftersale.connectors.base import time_or_none as _time
from aftersale.core.events import iso

DELIVERED = "shipment.delivered"
#: fulfillment statuses (Shopify's ``status``) whose parcel will never arrive
DEAD_FULFILLMENTS = frozenset({"cancelled", "error", "failure"})


def announce(
    connector, kind, status, fulfillment, occurred, meta, book, *, estimated=False, **subjects
) -> Normalized:
    """One ``kind`` event for a parcel, unless it was announced already or is out of order.

    ``status`` is the platform's own word, kept as the fulfillment's
    ``shipment_status``; ``subjects`` are handed to the connector's event
    builder (the order, or the state it is taken from).
    """
    fid = fulfillment["id"]
    seen = entry(book, fid)
    if seen.get("delivered") and kind != DELIVERED:
        return Normalized(outcome="stale", detail=f"{status} after delivery")
    last_at = _time(seen.get("at"))
    if last_at and occurred < last_at and not seen.get("estimated"):
        return Normalized(outcome="stale", detail=f"{status} older than {seen.get('status')}")
    data = {**(seen.get("data") or {}), **_compact(fulfillment), "shipment_status": status}
    data["estimated"] = bool(estimated)  # always there, so templates may test it
    event = connector._event(kind, meta, f"{fid}:{kind}", occurred, fulfillment=data, **subjects)
    if estimated:
        event.source = {**event.source, "estimated": True}
    new_state = record(book, data, status, occurred, delivered=kind == DELIVERED)
    row = new_state.extra["fulfillments"][fid]
    row["kind"] = kind
    if estimated:
        row["estimated"] = True
    events = [event]
    if kind == DELIVERED and not seen.get("delivered") and whole_order_delivered(new_state):
        order_subjects = {k: v for k, v in subjects.items() if k != "state"}
        if "state" in subjects:
            order_subjects["state"] = new_state
        order_event = connector._event(
            "order.delivered",
            meta,
            (new_state.order or {}).get("id") or data.get("order_id"),
            occurred,
            **order_subjects,
        )
        if estimated:
            order_event.source = {**order_event.source, "estimated": True}
        events.append(order_event)
    return Normalized(events=events, state=new_state)


def record(state: OrderState, fulfillment: dict, status, at, *, delivered=None) -> OrderState:
    """The state with this parcel's entry updated; the status and time stay when not given."""
    extra = dict(state.extra)
    table = dict(extra.get("fulfillments") or {})
    previous = table.get(fulfillment["id"]) or {}
    row = {
        **previous,
        "status": status or previous.get("status"),
        "at": iso(at) if at else previous.get("at"),
        "data": {**(previous.get("data") or {}), **_compact(fulfillment)},
    }
    if delivered is not None:
        row["delivered"] = bool(delivered) or bool(previous.get("delivered"))
        if delivered:
            row.pop("estimated", None)
    table[fulfillment["id"]] = row
    extra["fulfillments"] = table
    order = state.order or {"id": fulfillment.get("order_id")}
    return OrderState(order=order, extra=extra, version=state.version)


def entry(state: OrderState, fid: str) -> dict:
    return (state.extra.get("fulfillments") or {}).get(fid) or {}


def live(state: OrderState) -> dict:
    """The parcels still on the order: not removed from it, not cancelled."""
    return {
        fid: row
        for fid, row in (state.extra.get("fulfillments") or {}).items()
        if not row.get("gone") and (row.get("data") or {}).get("status") not in DEAD_FULFILLMENTS
    }


def is_delivered(row: dict) -> bool:
    # entries stored before ``delivered`` was kept say it with Shopify's status
    return bool(row.get("delivered")) or row.get("status") in ("delivered", "picked_up")


def whole_order_delivered(state: OrderState) -> bool:
    """Every parcel on the order is delivered, and so is every item quantity when items are known.

    Without item quantities (an order whose payload never arrived, or a
    platform whose parcels do not list items) a partly fulfilled order is not
    delivered.
    """
    parcels = live(state)
    if not parcels or not all(is_delivered(row) for row in parcels.values()):
        return False
    wanted = state.extra.get("items")
    if not wanted:
        return (state.order or {}).get("fulfillment_status") not in ("partial", "unfulfilled")
    covered: dict[str, int] = {}
    for row in parcels.values():
        for item in (row.get("data") or {}).get("line_items") or []:
            if item.get("id"):
                covered[item["id"]] = covered.get(item["id"], 0) + quantity(item.get("quantity"))
    return all(covered.get(ref, 0) >= quantity for ref, quantity in wanted.items())


def seen_at(seen: dict) -> datetime | None:
    return _time(seen.get("at"))


def quantity(value) -> int:
    """A quantity as a count: anything unreadable or negative is 0."""
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
