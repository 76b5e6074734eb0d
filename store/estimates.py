"""Estimated deliveries: when the scheduler takes a parcel with no delivery signal as delivered.

One row per parcel (shop, fulfillment ref), made ``pending`` when the parcel
ships in a shop whose settings estimate delivery; the scheduler claims due
rows (``SKIP LOCKED`` on PostgreSQL, so several schedulers never emit one
twice) and marks them ``emitted``; a real signal first marks them
``cancelled`` with the reason. A parcel gets one row ever: a second planning
of the same parcel is ignored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from aftersale.store.fit import fit_row
from aftersale.store.sql import for_update, insert_ignore
from aftersale.store.tables import delivery_estimates

PENDING, EMITTED, CANCELLED = "pending", "emitted", "cancelled"


def plan(conn: Connection, shop_id: int, order_ref: str, fulfillment_ref: str, due_at, now) -> bool:
    """A pending estimate for a parcel, unless it has one (in any status); True when new."""
    row = fit_row(
        delivery_estimates,
        {
            "shop_id": shop_id,
            "order_ref": order_ref,
            "fulfillment_ref": fulfillment_ref,
            "due_at": due_at,
            "status": PENDING,
            "created_at": now,
            "updated_at": now,
        },
    )
    stmt = insert_ignore(conn, delivery_estimates).values(row)
    return conn.execute(stmt.returning(delivery_estimates.c.id)).first() is not None


def cancel(
    conn: Connection,
    shop_id: int,
    note: str,
    now: datetime,
    *,
    fulfillment_refs=(),
    order_ref: str | None = None,
) -> int:
    """Cancel pending estimates of these parcels, or of the whole order; how many."""
    where = [delivery_estimates.c.shop_id == shop_id, delivery_estimates.c.status == PENDING]
    if order_ref is not None:
        where.append(delivery_estimates.c.order_ref == order_ref)
    else:
        refs = [
            fit_row(delivery_estimates, {"fulfillment_ref": r})["fulfillment_ref"]
            for r in fulfillment_refs
        ]
        if not refs:
            return 0
        where.append(delivery_estimates.c.fulfillment_ref.in_(refs))
    stmt = (
        update(delivery_estimates)
        .where(*where)
        .values(status=CANCELLED, note=note[:255], updated_at=now)
        .returning(delivery_estimates.c.id)
    )
    return len(conn.execute(stmt).all())


def claim_due(conn: Connection, now: datetime, limit: int) -> list:
    """Pending estimates due by ``now``, oldest first, locked until the transaction ends."""
    stmt = (
        select(delivery_estimates)
        .where(delivery_estimates.c.status == PENDING, delivery_estimates.c.due_at <= now)
        .order_by(delivery_estimates.c.due_at, delivery_estimates.c.id)
        .limit(limit)
    )
    return conn.execute(for_update(conn, stmt, skip_locked=True)).all()


def finish(conn: Connection, estimate_id: int, status: str, now: datetime, note=None) -> None:
    conn.execute(
        update(delivery_estimates)
        .where(delivery_estimates.c.id == estimate_id)
        .values(status=status, note=(note or None) and note[:255], updated_at=now)
    )


def for_order(conn: Connection, shop_id: int, order_ref: str) -> list:
    return conn.execute(
        select(delivery_estimates)
        .where(delivery_estimates.c.shop_id == shop_id, delivery_estimates.c.order_ref == order_ref)
        .order_by(delivery_estimates.c.id)
    ).all()
