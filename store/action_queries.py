"""Read-only questions about actions: what an operator lists, what a later step needs to know."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from aftersale.core.steps import MESSAGE_STEPS
from aftersale.store.tables import actions, shops


def earlier_steps(conn: Connection, action) -> list:
    """The other actions one rule planned for the same event before this step, in step order.

    Later steps use what earlier ones produced (a discount code), so they
    need to know whether those have finished and what they returned.
    """
    if not action.step or action.event_id is None:
        return []
    return conn.execute(
        select(
            actions.c.id,
            actions.c.step,
            actions.c.action_type,
            actions.c.status,
            actions.c.due_at,
            actions.c.result,
        )
        .where(
            actions.c.event_id == action.event_id,
            actions.c.rule == action.rule,
            actions.c.shop_id == action.shop_id,
            actions.c.step < action.step,
        )
        .order_by(actions.c.step)
    ).all()


def search(
    conn: Connection,
    *,
    status: str | None = None,
    shop: str | None = None,
    order_ref: str | None = None,
    rule: str | None = None,
    limit: int = 50,
):
    """Actions newest first, with their shop's domain, filtered as ``aftersale actions list`` asks."""
    stmt = select(actions, shops.c.domain.label("shop_domain")).join(
        shops, shops.c.id == actions.c.shop_id
    )
    if status:
        stmt = stmt.where(actions.c.status == status)
    if shop:
        stmt = stmt.where(shops.c.domain == shop)
    if order_ref:
        stmt = stmt.where(actions.c.order_ref == order_ref)
    if rule:
        stmt = stmt.where(actions.c.rule == rule)
    return conn.execute(stmt.order_by(actions.c.id.desc()).limit(limit)).all()


def marketing_sent_since(conn, shop_id: int, customer_ref: str, since, exclude_id: int) -> list:
    """When each marketing message to this customer since ``since`` was sent (for the cap)."""
    return list(
        conn.execute(
            select(actions.c.finished_at).where(
                actions.c.shop_id == shop_id,
                actions.c.customer_ref == customer_ref,
                actions.c.category == "marketing",
                actions.c.action_type.in_(sorted(MESSAGE_STEPS)),
                actions.c.status == "sent",
                actions.c.finished_at >= since,
                actions.c.id != exclude_id,
            )
        ).scalars()
    )
