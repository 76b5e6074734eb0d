"""WooCommerce's webhook topics, one handler each, dispatched by ``TOPIC_HANDLERS``.

Each handler is ``handler(connector, payload, meta, state) -> Normalized``
(the base connector calls it with the connector as first argument).

WooCommerce builds a payload when it sends it, so several changes can arrive
as one ``order.updated`` and the topic says little: everything a rule cares
about (paid, shipped, completed, cancelled, refunded) is found by comparing
the order with the bookkeeping stored from the last one (``_bookkeeping``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aftersale.connectors.base import DeliveryMeta, Normalized, OrderState, missing_id
from aftersale.connectors.base import decimal_or_zero as _decimal
from aftersale.connectors.base import ref as _id
from aftersale.connectors.base import time_or_none as _time
from aftersale.connectors.woocommerce import shipments
from aftersale.connectors.woocommerce.canonical import (
    canonical_customer,
    canonical_customer_record,
    canonical_fulfillment,
    canonical_order,
    paid_status,
    tracking_key,
    trackings,
)
from aftersale.connectors.woocommerce.products import canonical_product
from aftersale.core.events import iso, money

#: An order first seen through order.updated (its order.created delivery was coalesced or
#: missed) still gets its order.created event if it is this recent; older orders are ones
#: that existed before the store was connected, and a thank-you for them would be odd.
FIRST_SIGHT_CREATED_WITHIN = timedelta(days=2)


def _order_changed(connector, payload, meta, state):
    """order.created / order.updated / order.restored: every transition since the stored state."""
    version = _time(payload.get("date_modified_gmt"))
    if state.version and version and version < state.version:
        return Normalized(
            outcome="stale", detail=f"modified {iso(version)} < stored {iso(state.version)}"
        )
    order = canonical_order(payload)
    if not order["id"]:
        return missing_id("order")
    customer = canonical_customer(payload)
    before = state.extra if state.known else {}
    now = _time(payload.get("date_modified_gmt")) or meta.happened_at
    events = []

    def emit(kind, key, occurred, **subjects):
        events.append(
            connector._event(kind, meta, key, occurred, order=order, customer=customer, **subjects)
        )

    created_at = _time(payload.get("date_created_gmt")) or now
    if meta.topic == "order.restored":
        emit("order.restored", f"{order['id']}@{iso(now)}", now)
    if not state.known and _announce_creation(meta, created_at):
        emit("order.created", order["id"], created_at)
    status = payload.get("status")
    paid_at = _time(payload.get("date_paid_gmt"))
    if paid_status(status) and paid_at and not before.get("paid"):
        emit("order.paid", order["id"], paid_at)
    for item in _new_trackings(payload, before):
        fulfillment = canonical_fulfillment(item, order, payload)
        emit(
            "fulfillment.created",
            fulfillment["id"],
            _time(fulfillment["created_at"]) or now,
            fulfillment=fulfillment,
        )
    if status == "completed" and before.get("status") != "completed":
        emit("order.fulfilled", order["id"], _time(payload.get("date_completed_gmt")) or now)
    delivery, parcels = shipments.track(connector, payload, order, customer, state, meta, now)
    events.extend(delivery)
    if status == "cancelled" and before.get("status") != "cancelled":
        emit("order.cancelled", order["id"], now)
    for refund in _new_refunds(payload, before, order):
        emit("order.refunded", refund["id"], now, refund=refund)
    extra = {**_bookkeeping(payload), "fulfillments": parcels}  # parcels: the delivery ledger
    new_state = OrderState(order=order, extra=extra, version=version)
    if not events:
        return Normalized(state=new_state, outcome="no_change")
    return Normalized(events=events, state=new_state)


def _order_deleted(connector, payload, meta, state):
    """The body is only ``{"id": N}``: the event carries the stored order when there is one."""
    order_id = _id(payload.get("id"))
    occurred = meta.happened_at
    order = state.order or {"id": order_id}
    event = connector._event(
        "order.deleted", meta, f"{order_id}@{iso(occurred)}", occurred, order=order
    )
    extra = {**state.extra, "deleted": True}
    return Normalized(
        events=[event], state=OrderState(order=order, extra=extra, version=state.version)
    )


def _customer_event(kind: str):
    def handler(connector, payload, meta, state):
        customer = canonical_customer_record(payload)
        if not customer.get("id"):
            return missing_id("customer")
        occurred = (
            _time(payload.get("date_modified_gmt"))
            or _time(payload.get("date_created_gmt"))
            or meta.happened_at
        )
        key = customer["id"] if kind == "customer.created" else f"{customer['id']}@{iso(occurred)}"
        return Normalized(events=[connector._event(kind, meta, key, occurred, customer=customer)])

    return handler


def _product_event(kind: str):
    def handler(connector, payload, meta, state):
        # what the catalog keeps (connectors/woocommerce/products.py)
        product = canonical_product(payload)
        occurred = _time(payload.get("date_modified_gmt")) or meta.happened_at
        key = f"{product.get('id')}@{iso(occurred)}"
        return Normalized(events=[connector._event(kind, meta, key, occurred, product=product)])

    return handler


TOPIC_HANDLERS = {
    "order.created": _order_changed,
    "order.updated": _order_changed,
    "order.restored": _order_changed,
    "order.deleted": _order_deleted,
    "customer.created": _customer_event("customer.created"),
    "customer.updated": _customer_event("customer.updated"),
    "product.created": _product_event("product.created"),
    "product.updated": _product_event("product.updated"),
    "product.restored": _product_event("product.updated"),
    "product.deleted": _product_event("product.deleted"),
}

#: answered 200 and recorded, deliberately without events
IGNORED_TOPICS = frozenset({"customer.deleted"})


# -- the diff against the stored order ------------------------------------------------


def _new_trackings(payload: dict, before: dict) -> list[dict]:
    seen = set(before.get("trackings") or [])
    return [item for item in trackings(payload) if tracking_key(item) not in seen]


def _new_refunds(payload: dict, before: dict, order: dict) -> list[dict]:
    """Each refund not seen before, with a positive amount; the last one says if the order is
    now fully refunded. A status set to ``refunded`` without a new entry is one refund of
    what was left."""
    seen = set(before.get("refunds") or {})
    refunds = payload.get("refunds") or []
    new = [  # oldest first
        r for r in reversed(refunds) if _id(r.get("id")) and _id(r.get("id")) not in seen
    ]
    full = payload.get("status") == "refunded" or _refunded_total(refunds) >= _decimal(
        payload.get("total")
    )
    currency = payload.get("currency")
    result = []
    for index, raw in enumerate(new):
        result.append(
            {
                "id": _id(raw.get("id")),
                "order_id": order["id"],
                "amount": money(abs(_decimal(raw.get("total")))),
                "currency": currency,
                "note": raw.get("reason") or None,
                "full": full if index == len(new) - 1 else False,
                "line_items": [],  # the webhook has totals only; items need the refunds endpoint
                "created_at": iso(_time(payload.get("date_modified_gmt"))),
            }
        )
    if not new and payload.get("status") == "refunded" and before.get("status") != "refunded":
        left = _decimal(payload.get("total")) - _refunded_total(refunds)
        result.append(
            {
                "id": f"{order['id']}-refunded",
                "order_id": order["id"],
                "amount": money(max(left, Decimal(0))),
                "currency": currency,
                "note": None,
                "full": True,
                "line_items": [],
                "created_at": iso(_time(payload.get("date_modified_gmt"))),
            }
        )
    return result


def _bookkeeping(payload: dict) -> dict:
    """What the next diff compares against: status, paid, refunds and tracking items seen."""
    return {
        "status": payload.get("status"),
        "paid": bool(payload.get("date_paid_gmt"))
        and (
            paid_status(payload.get("status")) or payload.get("status") in ("refunded", "cancelled")
        ),
        "refunds": {
            _id(r.get("id")): money(abs(_decimal(r.get("total"))))
            for r in payload.get("refunds") or []
            if _id(r.get("id"))
        },
        "trackings": [tracking_key(item) for item in trackings(payload)],
    }


def _announce_creation(meta: DeliveryMeta, created_at: datetime) -> bool:
    if meta.topic == "order.created":
        return True
    if meta.topic == "order.restored":
        return False
    return (meta.happened_at or datetime.now(UTC)) - created_at <= FIRST_SIGHT_CREATED_WITHIN


def _refunded_total(refunds: list) -> Decimal:
    return sum((abs(_decimal(r.get("total"))) for r in refunds), Decimal(0))
