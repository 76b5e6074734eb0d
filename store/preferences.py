"""A customer's marketing preferences: which sub-categories they muted, when and where.

One row per shop, customer and sub-category (``core/preferences.py``). No
row means "kept": every customer gets every marketing sub-category their
consent allows until they mute one. A row is written only when a choice
changes, so ``updated_at`` and ``source`` say when and where the customer last
changed their mind about that sub-category.

Customers are keyed by ``customer_ref`` as actions are (the platform's
customer id, or ``guest:<email>`` for guest orders), so a customer's erasure
(``store/privacy.py``) deletes these rows with the rest of their data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from aftersale.store.sql import insert_ignore
from aftersale.store.tables import preferences


def muted(conn: Connection, shop_id: int, customer_ref: str | None) -> frozenset[str]:
    """The sub-categories the customer muted (empty for an unknown or missing customer)."""
    if not customer_ref:
        return frozenset()
    return frozenset(
        conn.execute(
            select(preferences.c.subcategory).where(
                preferences.c.shop_id == shop_id,
                preferences.c.customer_ref == customer_ref,
                preferences.c.muted.is_(True),
            )
        ).scalars()
    )


def choices(conn: Connection, shop_id: int, customer_ref: str) -> list:
    """Every stored choice of the customer (rows, muted or kept again), by sub-category."""
    return conn.execute(
        select(preferences)
        .where(preferences.c.shop_id == shop_id, preferences.c.customer_ref == customer_ref)
        .order_by(preferences.c.subcategory)
    ).all()


def save(
    conn: Connection,
    shop_id: int,
    customer_ref: str,
    wanted: dict[str, bool],
    source: str,
    now: datetime,
) -> dict[str, bool]:
    """Store ``wanted`` ({sub-category: muted}); returns only what changed.

    A sub-category not in ``wanted`` is left as it is, so a page listing some
    sub-categories cannot reset others. Unchanged choices keep their time and
    source.
    """
    current = {row.subcategory: row.muted for row in choices(conn, shop_id, customer_ref)}
    changed = {sub: mute for sub, mute in wanted.items() if current.get(sub, False) != mute}
    for sub, mute in changed.items():
        values = {"muted": mute, "source": source[:64], "updated_at": now}
        if sub in current:
            conn.execute(
                update(preferences)
                .where(
                    preferences.c.shop_id == shop_id,
                    preferences.c.customer_ref == customer_ref,
                    preferences.c.subcategory == sub,
                )
                .values(**values)
            )
        else:
            # two saves racing: the second insert is ignored, the first choice stands
            conn.execute(
                insert_ignore(conn, preferences).values(
                    shop_id=shop_id,
                    customer_ref=customer_ref,
                    subcategory=sub,
                    created_at=now,
                    **values,
                )
            )
    return changed
