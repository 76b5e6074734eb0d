"""Shipment bookkeeping: which status of which fulfillment was announced, and when.

Shopify reports a parcel's progress twice over (``shipment_status`` on
fulfillments/update, ``status`` on fulfillment_events/create), at least once
and in any order. So the order's stored state keeps, per fulfillment, the last
status announced and its time (``extra["fulfillments"]``), and a status is
turned into an event once, in order, never backwards after delivery; a split
shipment gives one ``order.delivered`` when its last parcel arrives.
"""

from __future__ import annotations

from datetime import datetime

from aftersale.connectors.base import Normalized, OrderState
from aftersale.connectors.base import compact as _compact
from aftersale.connectors.base import time_or_none as _time
from aftersale.core.events import iso

#: shipment_status (fulfillments) / status (fulfillment events) -> canonical kind
SHIPMENT_KINDS = {
    "carrier_picked_up": "shipment.in_transit",
    "in_transit": "shipment.in_transit",
    "out_for_delivery": "shipment.out_for_delivery",
    "attempted_delivery": "shipment.attempted",
    "delayed": "shipment.delayed",
    "ready_for_pickup": "shipment.ready_for_pickup",
    "picked_up": "shipment.delivered",
    "delivered": "shipment.delivered",
    "failure": "shipment.failed",
}
#: statuses Shopify documents that mean nothing to a customer yet
QUIET_SHIPMENT_STATUSES = frozenset({"label_printed", "label_purchased", "confirmed"})
DELIVERED_STATUSES = frozenset({"delivered", "picked_up"})


def shipment(connector, status, fulfillment, occurred, meta, state, order_id=None) -> Normalized:
    """One shipment event per (fulfillment, status), in order, never backwards after delivery."""
    fid = fulfillment["id"]
    seen = (state.extra.get("fulfillments") or {}).get(fid) or {}
    if status is None or status in QUIET_SHIPMENT_STATUSES:
        return Normalized(
            state=with_fulfillment(state, fulfillment, seen.get("status"), seen_at(seen))
        )
    kind = SHIPMENT_KINDS.get(status)
    if kind is None:
        return Normalized(outcome="unknown_status", detail=f"shipment_status={status}")
    last_at = seen_at(seen)
    if seen.get("status") in DELIVERED_STATUSES and status not in DELIVERED_STATUSES:
        return Normalized(outcome="stale", detail=f"{status} after {seen['status']}")
    if last_at and occurred < last_at:
        return Normalized(outcome="stale", detail=f"{status} older than {seen.get('status')}")
    fulfillment = {
        **(seen.get("data") or {}),
        **_compact(fulfillment),
        "shipment_status": status,
    }
    event = connector._event(
        kind,
        meta,
        f"{fid}:{kind}",
        occurred,
        fulfillment=fulfillment,
        state=state,
        order_id=order_id,
    )
    new_state = with_fulfillment(state, fulfillment, status, occurred)
    events = [event]
    if kind == "shipment.delivered" and whole_order_delivered(new_state):
        # A split shipment: one order.delivered when the last parcel arrives.
        events.append(
            connector._event(
                "order.delivered",
                meta,
                order_id or fulfillment.get("order_id"),
                occurred,
                state=new_state,
                order_id=order_id,
            )
        )
    return Normalized(events=events, state=new_state)


def with_fulfillment(state: OrderState, fulfillment: dict, status, at) -> OrderState:
    extra = dict(state.extra)
    table = dict(extra.get("fulfillments") or {})
    previous = table.get(fulfillment["id"]) or {}
    table[fulfillment["id"]] = {
        "status": status or previous.get("status"),
        "at": iso(at) if at else previous.get("at"),
        "data": {**(previous.get("data") or {}), **_compact(fulfillment)},
    }
    extra["fulfillments"] = table
    order = state.order or {"id": fulfillment.get("order_id")}
    return OrderState(order=order, extra=extra, version=state.version)


def whole_order_delivered(state: OrderState) -> bool:
    """Every fulfillment we know of is delivered, and the order is not partly unfulfilled."""
    table = state.extra.get("fulfillments") or {}
    if not table:
        return False
    if (state.order or {}).get("fulfillment_status") in ("partial", "unfulfilled"):
        return False
    return all(entry.get("status") in DELIVERED_STATUSES for entry in table.values())


def seen_at(seen: dict) -> datetime | None:
    return _time(seen.get("at"))
