"""Shopify's webhook topics, one handler each, dispatched by ``TOPIC_HANDLERS``.

Each handler is ``handler(connector, payload, meta, state) -> Normalized``
(the base connector calls it with the connector as first argument). They are
here, not in the connector class, because they are what grows as Shopify
adds topics, while receiving and verifying stays put. Shipment statuses go
through ``shipments`` (announced once, in order); refunds keep their amounts
in the order's stored state (``extra["refunds"]``) to tell a full refund.
"""

from __future__ import annotations

from datetime import datetime

from aftersale.connectors.base import (
    DeliveryMeta,
    Normalized,
    OrderState,
    believable,
    missing_id,
)
from aftersale.connectors.base import compact as _compact
from aftersale.connectors.base import decimal_or_zero as _decimal
from aftersale.connectors.base import ref as _id
from aftersale.connectors.base import time_or_none as _time
from aftersale.connectors.shopify import consent
from aftersale.connectors.shopify.canonical import (
    canonical_customer,
    canonical_fulfillment,
    canonical_order,
    canonical_refund,
    return_order_id,
)
from aftersale.connectors.shopify.products import canonical_product
from aftersale.connectors.shopify.shipments import (
    shipment,
    with_fulfillment,
    with_items,
    without_refunded,
)
from aftersale.core.events import iso

# -- orders ----------------------------------------------------------------------------


def _order_event(kind: str, time_field: str):
    def handler(connector, payload, meta, state):
        order = canonical_order(payload)
        if not order["id"]:
            return missing_id("order")
        customer = canonical_customer(payload.get("customer"), payload)
        occurred = _time(payload.get(time_field)) or _time(payload.get("updated_at")) or _now(meta)
        event = connector._event(kind, meta, order["id"], occurred, order=order, customer=customer)
        return Normalized(events=[event], state=_newer_state(state, order, payload))

    handler.__name__ = f"_{kind.replace('.', '_')}"
    return handler


def _order_updated(connector, payload, meta, state):
    """No event of its own: it keeps the stored order fresh for later fulfillment events."""
    order = canonical_order(payload)
    if not order["id"]:
        return missing_id("order")
    new_state = _newer_state(state, order, payload)
    return Normalized(state=new_state, outcome="processed" if new_state else "stale")


# -- fulfillments and shipments ------------------------------------------------------------


def _fulfillment_created(connector, payload, meta, state):
    fulfillment = canonical_fulfillment(payload)
    if not fulfillment["id"]:
        return missing_id("fulfillment")
    occurred = believable(meta, _time(payload.get("created_at")) or _now(meta), "created_at")
    events = [
        connector._event(
            "fulfillment.created",
            meta,
            fulfillment["id"],
            occurred,
            fulfillment=fulfillment,
            state=state,
            order_id=fulfillment["order_id"],
        )
    ]
    normalized = Normalized(
        events=events, state=with_fulfillment(state, fulfillment, None, occurred)
    )
    shipped = shipment(
        connector,
        payload.get("shipment_status"),
        fulfillment,
        occurred,
        meta,
        state,
        fulfillment["order_id"],
    )
    normalized.events += shipped.events
    if shipped.state is not None:
        normalized.state = with_fulfillment(shipped.state, fulfillment, None, occurred)
    return normalized


def _fulfillment_updated(connector, payload, meta, state):
    fulfillment = canonical_fulfillment(payload)
    if not fulfillment["id"]:
        return missing_id("fulfillment")
    occurred = believable(meta, _time(payload.get("updated_at")) or _now(meta), "updated_at")
    return shipment(
        connector,
        payload.get("shipment_status"),
        fulfillment,
        occurred,
        meta,
        state,
        fulfillment["order_id"],
    )


def _fulfillment_event(connector, payload, meta, state):
    fid = _id(payload.get("fulfillment_id"))
    if not fid:
        return missing_id("fulfillment")
    known = (state.extra.get("fulfillments") or {}).get(fid, {}).get("data") or {}
    fulfillment = {
        **known,
        "id": fid,
        "shipment_status": payload.get("status"),
        "message": payload.get("message"),
        "estimated_delivery_at": iso(_time(payload.get("estimated_delivery_at"))),
        "location": _compact({k: payload.get(k) for k in ("city", "province", "country", "zip")}),
    }
    occurred = believable(
        meta,
        _time(payload.get("happened_at")) or _time(payload.get("created_at")) or _now(meta),
        "happened_at",
    )
    return shipment(
        connector,
        payload.get("status"),
        fulfillment,
        occurred,
        meta,
        state,
        _id(payload.get("order_id")),
    )


# -- refunds and returns ---------------------------------------------------------------------


def _refund_created(connector, payload, meta, state):
    refund = canonical_refund(payload, state)
    if not refund["id"]:
        return missing_id("refund")
    occurred = _time(payload.get("processed_at")) or _time(payload.get("created_at")) or _now(meta)
    extra = without_refunded(dict(state.extra), refund)  # its items are not to be delivered
    extra["refunds"] = {**(extra.get("refunds") or {}), refund["id"]: refund["amount"]}
    new_state = OrderState(
        order=state.order or {"id": refund["order_id"]}, extra=extra, version=state.version
    )
    refund["full"] = _fully_refunded(new_state)
    event = connector._event(
        "order.refunded",
        meta,
        refund["id"],
        occurred,
        refund=refund,
        state=state,
        order_id=refund["order_id"],
    )
    return Normalized(events=[event], state=new_state)


def _return_event(kind: str):
    def handler(connector, payload, meta, state):
        ret = {
            "id": _id(payload.get("id")),
            "status": payload.get("status"),
            "name": payload.get("name"),
            "line_items": [
                _compact(
                    {
                        "id": _id(item.get("id")),
                        "quantity": item.get("quantity"),
                        "reason": item.get("return_reason") or item.get("reason"),
                        "note": item.get("return_reason_note") or item.get("customer_note"),
                    }
                )
                for item in payload.get("return_line_items") or []
            ],
        }
        if not ret["id"]:
            return missing_id("return")
        occurred = (
            _time(payload.get("updated_at")) or _time(payload.get("created_at")) or _now(meta)
        )
        order_id = return_order_id(payload)
        event = connector._event(
            kind, meta, ret["id"], occurred, return_=ret, state=state, order_id=order_id
        )
        return Normalized(events=[event])

    return handler


# -- customers, privacy, products ----------------------------------------------------------


def _customer_event(kind: str):
    def handler(connector, payload, meta, state):
        customer = canonical_customer(payload, None)
        if customer is None:
            return missing_id("customer")
        occurred = (
            _time(payload.get("updated_at")) or _time(payload.get("created_at")) or _now(meta)
        )
        key = customer["id"] if kind == "customer.created" else f"{customer['id']}@{iso(occurred)}"
        return Normalized(events=[connector._event(kind, meta, key, occurred, customer=customer)])

    return handler


def _privacy_event(kind: str):
    def handler(connector, payload, meta, state):
        raw = payload.get("customer") or {}
        customer = _compact(
            {"id": _id(raw.get("id")), "email": raw.get("email"), "phone": raw.get("phone")}
        )
        orders = [
            str(o) for o in payload.get("orders_to_redact") or payload.get("orders_requested") or []
        ]
        key = meta.event_id or meta.delivery_id
        event = connector._event(
            kind,
            meta,
            key,
            _now(meta),
            customer=customer or None,
            order={"ids": orders} if orders else None,
        )
        return Normalized(events=[event])

    return handler


def _product_event(kind: str):
    def handler(connector, payload, meta, state):
        # what the catalog keeps (connectors/shopify/products.py); a delete carries only the id
        product = canonical_product(payload)
        occurred = _time(payload.get("updated_at")) or _now(meta)
        key = f"{product.get('id')}@{iso(occurred)}"
        return Normalized(events=[connector._event(kind, meta, key, occurred, product=product)])

    return handler


TOPIC_HANDLERS = {
    "orders/create": _order_event("order.created", "created_at"),
    "orders/paid": _order_event("order.paid", "processed_at"),
    "orders/cancelled": _order_event("order.cancelled", "cancelled_at"),
    "orders/fulfilled": _order_event("order.fulfilled", "updated_at"),
    "orders/partially_fulfilled": _order_event("order.partially_fulfilled", "updated_at"),
    "orders/updated": _order_updated,
    "fulfillments/create": _fulfillment_created,
    "fulfillments/update": _fulfillment_updated,
    "fulfillment_events/create": _fulfillment_event,
    "refunds/create": _refund_created,
    "returns/request": _return_event("return.requested"),
    "returns/approve": _return_event("return.approved"),
    "returns/decline": _return_event("return.declined"),
    "returns/cancel": _return_event("return.cancelled"),
    "returns/close": _return_event("return.closed"),
    "customers/create": _customer_event("customer.created"),
    "customers/update": _customer_event("customer.updated"),
    **consent.HANDLERS,
    "customers/redact": _privacy_event("customer.redact"),
    "customers/data_request": _privacy_event("customer.data_request"),
    "shop/redact": _privacy_event("shop.redact"),
    "app/uninstalled": _privacy_event("app.uninstalled"),
    "products/create": _product_event("product.created"),
    "products/update": _product_event("product.updated"),
    "products/delete": _product_event("product.deleted"),
}
#: answered 200 and recorded, deliberately without events
IGNORED_TOPICS = frozenset({"returns/reopen", "orders/edited", "orders/delete"})

_ORDER = ("id",)
_CONSENT = ("customer_id", "email_marketing_consent")
#: keys each topic's body always has (present, not null); a body without them was sent for
#: another topic (an order re-sent as orders/cancelled, a refund without its order) and is
#: recorded as rejected. The privacy topics must name the shop they are about.
REQUIRED_KEYS = {
    "orders/create": _ORDER,
    "orders/paid": _ORDER,
    "orders/updated": _ORDER,
    "orders/cancelled": (*_ORDER, "cancelled_at"),
    "orders/fulfilled": (*_ORDER, "fulfillment_status"),
    "orders/partially_fulfilled": (*_ORDER, "fulfillment_status"),
    "fulfillments/create": ("id", "order_id"),
    "fulfillments/update": ("id", "order_id"),
    "fulfillment_events/create": ("id", "fulfillment_id", "order_id", "status"),
    "refunds/create": ("id", "order_id"),
    **dict.fromkeys(
        ("returns/request", "returns/approve", "returns/decline", "returns/cancel"), ("id",)
    ),
    "returns/close": ("id",),
    "customers/create": ("id",),
    "customers/update": ("id",),
    "customers_email_marketing_consent/update": _CONSENT,
    "customers/email_marketing_consent_update": _CONSENT,
    "customers_marketing_consent/update": ("sms_marketing_consent",),
    "customers/redact": ("shop_id", "shop_domain", "customer"),
    "customers/data_request": ("shop_id", "shop_domain", "customer", "data_request"),
    "shop/redact": ("shop_id", "shop_domain"),
    "app/uninstalled": ("id", "myshopify_domain"),
    **dict.fromkeys(("products/create", "products/update", "products/delete"), ("id",)),
}
#: where a topic's body names its own shop; it must be the shop the headers say
SHOP_KEYS = {
    "customers/redact": "shop_domain",
    "customers/data_request": "shop_domain",
    "shop/redact": "shop_domain",
    "app/uninstalled": "myshopify_domain",
}
#: keys that make a body another topic's (a customers/redact body re-sent as shop/redact)
FOREIGN_KEYS = {"shop/redact": ("customer", "orders_to_redact", "orders_requested")}


# -- the order's bookkeeping ---------------------------------------------------


def _newer_state(state: OrderState, order: dict, payload: dict) -> OrderState | None:
    """The state to store, or None when the payload is older than what is stored."""
    version = _time(payload.get("updated_at"))
    if state.version and version and version < state.version:
        return None
    extra = with_items(state.extra, payload)  # what a split shipment must deliver
    return OrderState(order=order, extra=extra, version=version or state.version)


def _fully_refunded(state: OrderState) -> bool | None:
    total = (state.order or {}).get("total_price")
    if total is None:
        return None
    refunded = sum(_decimal(v) for v in (state.extra.get("refunds") or {}).values())
    return refunded >= _decimal(total)


def _now(meta: DeliveryMeta) -> datetime:
    return meta.happened_at
