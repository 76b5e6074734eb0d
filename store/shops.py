"""Shops: one row per store connected to Aftersale."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from store.sql import insert_ignore
from store.tables import shops


def ensure_shop(conn: Connection, platform: str, domain: str, now: datetime) -> int:
    """The id of a shop, creating the row on first sight."""
    found = conn.execute(
        select(shops.c.id).where(shops.c.platform == platform, shops.c.domain == domain)
    ).scalar()
    if found is not None:
        return found
    conn.execute(
        insert_ignore(conn, shops).values(
            platform=platform, domain=domain, created_at=now, updated_at=now
        )
    )
    return conn.execute(
        select(shops.c.id).where(shops.c.platform == platform, shops.c.domain == domain)
    ).scalar_one()


def find_shop(conn: Connection, platform: str, domain: str):
    return conn.execute(
        select(shops).where(shops.c.platform == platform, shops.c.domain == domain)
    ).first()


def get_shop(conn: Connection, shop_id: int):
    return conn.execute(select(shops).where(shops.c.id == shop_id)).first()
