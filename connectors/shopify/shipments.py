"""Shopify's shipment statuses, and the item quantities a split shipment is judged by.

Shopify reports a parcel's progress twice over (``shipment_status`` on
fulfillments/update, ``status`` on fulfillment_events/create), at least once
and in any order; the parcel ledger (``connectors/shipments.py``) turns each
status into an event once, in order. A split shipment gives one
``order.delivered`` when every item quantity still on the order (removed and
refunded items left out, items that need no shipping too) is in a delivered
parcel: fulfillments list their line items with quantities, and the order's
bookkeeping keeps what is to be delivered (``extra["items"]``).
"""

from __future__ import annotations

from aftersale.connectors import shipments as ledger
from aftersale.connectors.base import Normalized, OrderState
from aftersale.connectors.base import ref as _id

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
    seen = ledger.entry(state, fulfillment["id"])
    if status is None or status in QUIET_SHIPMENT_STATUSES:
        return Normalized(
            state=ledger.record(state, fulfillment, seen.get("status"), ledger.seen_at(seen))
        )
    kind = SHIPMENT_KINDS.get(status)
    if kind is None:
        return Normalized(outcome="unknown_status", detail=f"shipment_status={status}")
    return ledger.announce(
        connector, kind, status, fulfillment, occurred, meta, state, state=state, order_id=order_id
    )


def with_fulfillment(state: OrderState, fulfillment: dict, status, at) -> OrderState:
    return ledger.record(state, fulfillment, status, at)


def with_items(extra: dict, payload: dict) -> dict:
    """The order's bookkeeping with the item quantities still to deliver, from an order payload.

    ``current_quantity`` (REST 2024-01 and later) already leaves out removed
    and refunded items; older payloads give ``quantity`` and the refunds'
    line items. Items that need no shipping never arrive in a parcel.
    """
    refunds = [r for r in payload.get("refunds") or [] if isinstance(r, dict)]
    refunded: dict[str, int] = {}
    for refund in refunds:
        for line in refund.get("refund_line_items") or []:
            ref = _id(line.get("line_item_id"))
            if ref:
                refunded[ref] = refunded.get(ref, 0) + ledger.quantity(line.get("quantity"))
    items = {}
    for item in payload.get("line_items") or []:
        ref = _id(item.get("id"))
        if not ref or item.get("requires_shipping") is False:
            continue
        current = item.get("current_quantity")
        if current is None:
            current = ledger.quantity(item.get("quantity")) - refunded.get(ref, 0)
        items[ref] = max(ledger.quantity(current), 0)
    if not items:
        return extra
    counted = [_id(r.get("id")) for r in refunds if _id(r.get("id"))]
    return {**extra, "items": items, "items_refunds": counted}


def without_refunded(extra: dict, refund: dict) -> dict:
    """A refund not yet counted in ``items``: its line quantities are no longer to be delivered."""
    if "items" not in extra or refund["id"] in (extra.get("items_refunds") or []):
        return extra
    items = dict(extra["items"])
    for line in refund.get("line_items") or []:
        ref = line.get("line_item_id")
        if ref in items:
            items[ref] = max(items[ref] - ledger.quantity(line.get("quantity")), 0)
    counted = [*(extra.get("items_refunds") or []), refund["id"]]
    return {**extra, "items": items, "items_refunds": counted}
