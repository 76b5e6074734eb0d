"""Read-only questions about deliveries, for ``aftersale deliveries list`` and ``show``.

Bodies are never read here: a list shows each delivery's size, not what it
said (a body holds customer data and may already be emptied by retention).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from aftersale.store.tables import actions, deliveries, events, shops

#: what a list shows of a delivery (never the body or headers)
SUMMARY = (
    deliveries.c.id,
    deliveries.c.topic,
    deliveries.c.delivery_id,
    deliveries.c.event_id,
    deliveries.c.api_version,
    deliveries.c.triggered_at,
    deliveries.c.received_at,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.processed_at,
    deliveries.c.error,
    func.length(deliveries.c.body).label("body_bytes"),
    shops.c.domain.label("shop_domain"),
    shops.c.platform,
)


def search(
    conn: Connection,
    *,
    shop: str | None = None,
    topic: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    before: int | None = None,
):
    """Deliveries newest first with their shop, filtered as ``deliveries list`` asks.

    ``before``: only ids below it, the next page of a list (keyset: no OFFSET to scan).
    """
    stmt = select(*SUMMARY).join(shops, shops.c.id == deliveries.c.shop_id)
    if shop:
        stmt = stmt.where(shops.c.domain == shop)
    if topic:
        stmt = stmt.where(deliveries.c.topic == topic)
    if status:
        stmt = stmt.where(deliveries.c.status == status)
    if since is not None:
        stmt = stmt.where(deliveries.c.received_at >= since)
    if before is not None:
        stmt = stmt.where(deliveries.c.id < before)
    return conn.execute(stmt.order_by(deliveries.c.id.desc()).limit(limit)).all()


def summary(conn: Connection, delivery_id: int):
    """One delivery as a list shows it, or None."""
    return conn.execute(
        select(*SUMMARY)
        .join(shops, shops.c.id == deliveries.c.shop_id)
        .where(deliveries.c.id == delivery_id)
    ).first()


def events_of(conn: Connection, delivery_id: int):
    """The events a delivery produced, oldest first."""
    return conn.execute(
        select(
            events.c.id,
            events.c.kind,
            events.c.event_key,
            events.c.order_ref,
            events.c.customer_ref,
            events.c.occurred_at,
        )
        .where(events.c.delivery_id == delivery_id)
        .order_by(events.c.id)
    ).all()


def actions_of(conn: Connection, event_ids: list[int]):
    """The actions those events planned."""
    if not event_ids:
        return []
    return conn.execute(
        select(
            actions.c.id,
            actions.c.event_id,
            actions.c.rule,
            actions.c.step,
            actions.c.action_type,
            actions.c.status,
            actions.c.skip_reason,
            actions.c.due_at,
        )
        .where(actions.c.event_id.in_(event_ids))
        .order_by(actions.c.id)
    ).all()
