"""Canonical events as stored: each happening once per shop, kind and key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from aftersale.core.events import Event
from aftersale.store.fit import fit_row
from aftersale.store.sql import insert_returning_id, pairs_in
from aftersale.store.tables import events


def insert_event(
    conn: Connection, shop_id: int, delivery_id: int | None, event: Event, now: datetime
) -> int | None:
    """Store an event; its id, or None when the same happening was already stored.

    A reference too long for its column is truncated; the note joins the event's warnings.
    """
    values = fit_row(
        events,
        {
            "shop_id": shop_id,
            "delivery_id": delivery_id,
            "kind": event.kind,
            "event_key": event.key,
            "occurred_at": event.occurred_at,
            "order_ref": event.order_ref,
            "customer_ref": event.customer_ref,
            "fulfillment_ref": event.fulfillment_ref,
            "created_at": now,
        },
        event.warnings,
    )
    values["payload"] = event.to_dict()
    row = conn.execute(insert_returning_id(conn, events), values).first()
    return row.id if row else None


#: built once: a worker runs these for every action, and building a statement costs
#: more than executing it
_EVENT_BY_ID = select(events).where(events.c.id == bindparam("event_id"))


def get_event(conn: Connection, event_id: int):
    return conn.execute(_EVENT_BY_ID, {"event_id": event_id}).first()


_ORDER = events.c.payload["order"]
#: only what history facts read (rules/history.py): an order's whole payload (addresses,
#: fulfillments) is not fetched for each of a customer's orders at every judgment and send
_ORDER_FACTS = (
    events.c.order_ref,
    events.c.occurred_at,
    _ORDER["total_price"].label("total_price"),
    _ORDER["line_items"].label("line_items"),
)
_CUSTOMER_ORDERS = (
    select(*_ORDER_FACTS)
    .where(
        events.c.shop_id == bindparam("shop_id"),
        events.c.customer_ref == bindparam("customer_ref"),
        events.c.kind == "order.created",
    )
    .order_by(events.c.occurred_at)
)
#: the same for many customers: each row says whose order it is
_CUSTOMERS_ORDERS = (
    select(events.c.shop_id, events.c.customer_ref, *_ORDER_FACTS)
    .where(events.c.kind == "order.created")
    .order_by(events.c.occurred_at)
)
_HAS_ORDERED = (
    select(events.c.id)
    .where(
        events.c.shop_id == bindparam("shop_id"),
        events.c.customer_ref == bindparam("customer_ref"),
        events.c.kind == "order.created",
    )
    .limit(1)
)


def has_ordered(conn: Connection, shop_id: int, customer_ref: str) -> bool:
    """Whether any order of the customer is stored (one indexed row at most)."""
    found = conn.execute(_HAS_ORDERED, {"shop_id": shop_id, "customer_ref": customer_ref})
    return found.first() is not None


def customers_orders(conn: Connection, keys) -> dict[tuple[int, str], list]:
    """``customer_orders`` for many ``(shop id, customer ref)`` pairs in one query:
    {pair: rows oldest first}; a pair without orders maps to an empty list."""
    wanted = {(shop_id, ref) for shop_id, ref in keys if ref}
    found: dict[tuple[int, str], list] = {key: [] for key in wanted}
    if not wanted:
        return found
    stmt = _CUSTOMERS_ORDERS.where(*pairs_in(events.c.shop_id, events.c.customer_ref, wanted))
    for row in conn.execute(stmt):
        key = (row.shop_id, row.customer_ref)
        if key in found:
            found[key].append(row)
    return found


def customer_orders(conn: Connection, shop_id: int, customer_ref: str) -> list:
    """The customer's stored ``order.created`` events, oldest first (one indexed query):
    order_ref, occurred_at, total_price and line_items of each."""
    return conn.execute(_CUSTOMER_ORDERS, {"shop_id": shop_id, "customer_ref": customer_ref}).all()
