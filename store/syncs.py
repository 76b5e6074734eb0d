"""Reconciliation bookkeeping: one row per shop and kind (``orders``), see workers/reconcile.py.

The cursor is the platform's modification time up to which every changed
order has been processed; it only moves forward, and only after a whole page
is processed, so a run that crashes is resumed from the last full page and
repeats nothing but idempotent work. ``next_run_at`` is claimed with a
check-and-set, so two schedulers started by mistake enqueue one run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from aftersale.store.sql import insert_ignore
from aftersale.store.tables import shop_syncs, shops

ORDERS = "orders"


def get(conn: Connection, shop_id: int, kind: str = ORDERS):
    return conn.execute(
        select(shop_syncs).where(shop_syncs.c.shop_id == shop_id, shop_syncs.c.kind == kind)
    ).first()


def ensure(conn: Connection, shop_id: int, now: datetime, kind: str = ORDERS) -> None:
    """Create the shop's row on first use (no cursor yet: the run picks its own start)."""
    conn.execute(insert_ignore(conn, shop_syncs).values(shop_id=shop_id, kind=kind, updated_at=now))


def claim_due(
    conn: Connection, shop_ids: list[int], now: datetime, every: timedelta, kind: str = ORDERS
) -> list[int]:
    """The shops whose run is due, each claimed for this caller (next run moved ``every`` on).

    A claim is an UPDATE guarded by the ``next_run_at`` the caller read: a
    second scheduler reading the same row finds it changed and claims nothing.
    """
    for shop_id in shop_ids:
        ensure(conn, shop_id, now, kind)
    rows = conn.execute(
        select(shop_syncs.c.shop_id, shop_syncs.c.next_run_at).where(
            shop_syncs.c.kind == kind,
            shop_syncs.c.shop_id.in_(shop_ids),
            or_(shop_syncs.c.next_run_at.is_(None), shop_syncs.c.next_run_at <= now),
        )
    ).all()
    claimed = []
    for row in rows:
        seen = (
            shop_syncs.c.next_run_at.is_(None)
            if row.next_run_at is None
            else shop_syncs.c.next_run_at == row.next_run_at
        )
        done = conn.execute(
            update(shop_syncs)
            .where(and_(shop_syncs.c.shop_id == row.shop_id, shop_syncs.c.kind == kind, seen))
            .values(next_run_at=now + every, updated_at=now)
        ).rowcount
        if done:
            claimed.append(row.shop_id)
    return claimed


def start(conn: Connection, shop_id: int, now: datetime, kind: str = ORDERS) -> None:
    ensure(conn, shop_id, now, kind)
    conn.execute(
        update(shop_syncs)
        .where(shop_syncs.c.shop_id == shop_id, shop_syncs.c.kind == kind)
        .values(started_at=now, status="running", updated_at=now)
    )


def advance(
    conn: Connection, shop_id: int, cursor: datetime, now: datetime, kind: str = ORDERS
) -> None:
    """Move the cursor forward to ``cursor`` (never back)."""
    conn.execute(
        update(shop_syncs)
        .where(
            shop_syncs.c.shop_id == shop_id,
            shop_syncs.c.kind == kind,
            or_(shop_syncs.c.cursor.is_(None), shop_syncs.c.cursor < cursor),
        )
        .values(cursor=cursor, updated_at=now)
    )


def finish(
    conn: Connection, shop_id: int, status: str, summary: dict, now: datetime, kind: str = ORDERS
) -> None:
    conn.execute(
        update(shop_syncs)
        .where(shop_syncs.c.shop_id == shop_id, shop_syncs.c.kind == kind)
        .values(status=status, summary=summary, finished_at=now, updated_at=now)
    )


def reconcilable_shops(conn: Connection) -> list:
    """Active shops with stored credentials: the ones whose platform API can be asked."""
    return conn.execute(
        select(shops.c.id, shops.c.domain, shops.c.platform, shops.c.credentials).where(
            shops.c.status == "active", shops.c.credentials.is_not(None)
        )
    ).all()
