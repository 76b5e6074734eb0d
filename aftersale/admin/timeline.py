"""One order's story for the admin page: webhooks, events, the rules that did and did not
act, actions and each attempt, in the order they happened.

Read-only, from the store's own queries (delivery_queries, why_not, messages)
plus two lookups of its own: an order's events, and the orders a page of
deliveries was about.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from aftersale.store import delivery_queries, why_not
from aftersale.store import messages as message_store
from aftersale.store.tables import actions, events


@dataclass
class ActionEntry:
    row: object
    attempts: list


@dataclass
class EventEntry:
    """An event, the webhook that brought it, the rules that did not match and what it planned."""

    row: object
    delivery: object | None
    misses: list[why_not.Miss]
    actions: list[ActionEntry] = field(default_factory=list)


@dataclass
class Timeline:
    entries: list[EventEntry]
    #: actions of this order whose event is gone (redacted or deleted)
    orphans: list[ActionEntry]

    @property
    def empty(self) -> bool:
        return not self.entries and not self.orphans


def order_timeline(conn: Connection, shop_id: int, order_ref: str) -> Timeline:
    """Everything recorded about one order of one shop, oldest first."""
    found = conn.execute(
        select(
            events.c.id,
            events.c.kind,
            events.c.event_key,
            events.c.delivery_id,
            events.c.occurred_at,
            events.c.customer_ref,
            events.c.fulfillment_ref,
            events.c.created_at,
        )
        .where(events.c.shop_id == shop_id, events.c.order_ref == order_ref)
        .order_by(events.c.occurred_at, events.c.id)
    ).all()
    deliveries = {
        row.delivery_id: delivery_queries.summary(conn, row.delivery_id)
        for row in found
        if row.delivery_id is not None
    }
    entries = {
        row.id: EventEntry(row, deliveries.get(row.delivery_id), why_not.for_event(conn, row.id))
        for row in found
    }
    orphans = []
    for action in _actions(conn, shop_id, order_ref, list(entries)):
        entry = ActionEntry(action, message_store.for_action(conn, action.id))
        if action.event_id in entries:
            entries[action.event_id].actions.append(entry)
        else:
            orphans.append(entry)
    return Timeline(list(entries.values()), orphans)


def _actions(conn: Connection, shop_id: int, order_ref: str, event_ids: list[int]):
    about_order = actions.c.order_ref == order_ref
    if event_ids:
        about_order = or_(about_order, actions.c.event_id.in_(event_ids))
    return conn.execute(
        select(actions).where(actions.c.shop_id == shop_id, about_order).order_by(actions.c.id)
    ).all()


def orders_of(conn: Connection, delivery_ids: list[int]) -> dict[int, str]:
    """{delivery id: order ref} for the deliveries that were about an order."""
    if not delivery_ids:
        return {}
    rows = conn.execute(
        select(events.c.delivery_id, events.c.order_ref).where(
            events.c.delivery_id.in_(delivery_ids), events.c.order_ref.is_not(None)
        )
    ).all()
    return {row.delivery_id: row.order_ref for row in rows}
