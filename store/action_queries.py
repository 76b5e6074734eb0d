"""Read-only questions about actions: what an operator lists, what a later step needs to know."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from aftersale.core.steps import MESSAGE_STEPS
from aftersale.store.fit import fit_row
from aftersale.store.sql import pairs_in
from aftersale.store.tables import actions, customers, events, order_states, shops


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
    before: int | None = None,
):
    """Actions newest first, with their shop's domain, filtered as ``aftersale actions list`` asks.

    ``before``: only ids below it, the next page of a list (keyset: no OFFSET to scan).
    """
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
    if before is not None:
        stmt = stmt.where(actions.c.id < before)
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


#: built once: a worker reads this before each send
_CURRENT_ORDER = select(order_states.c.order).where(
    order_states.c.shop_id == bindparam("shop_id"),
    order_states.c.order_ref == bindparam("order_ref"),
)


def current_order(conn, shop_id: int, order_ref: str | None) -> dict | None:
    """The order as Aftersale knows it now (its latest canonical state), without locking it."""
    if not order_ref:
        return None
    return conn.execute(_CURRENT_ORDER, {"shop_id": shop_id, "order_ref": order_ref}).scalar()


def current_orders(conn, keys) -> dict[tuple[int, str], dict]:
    """``current_order`` for many ``(shop id, order ref)`` pairs in one query: {pair: order};
    a pair Aftersale has no state for is left out."""
    wanted = {(shop_id, ref) for shop_id, ref in keys if ref}
    if not wanted:
        return {}
    rows = conn.execute(
        select(order_states.c.shop_id, order_states.c.order_ref, order_states.c.order).where(
            *pairs_in(order_states.c.shop_id, order_states.c.order_ref, wanted)
        )
    )
    return {
        (row.shop_id, row.order_ref): row.order
        for row in rows
        if (row.shop_id, row.order_ref) in wanted
    }


def pending_for_rule(conn, rule: str, shop: str | None = None) -> list:
    """(id, shop domain) of a rule's pending actions (scheduled, waiting or queued)."""
    stmt = (
        select(actions.c.id, shops.c.domain)
        .join(shops, shops.c.id == actions.c.shop_id)
        .where(actions.c.rule == rule, actions.c.status.in_(("scheduled", "waiting", "queued")))
    )
    if shop:
        stmt = stmt.where(shops.c.domain == shop)
    return conn.execute(stmt.order_by(actions.c.id)).all()


def events_by_id(conn, event_ids) -> dict[int, object]:
    """The stored events of a job's actions, {id: row}, in one query (events never change)."""
    ids = sorted(set(event_ids))
    if not ids:
        return {}
    return {row.id: row for row in conn.execute(select(events).where(events.c.id.in_(ids)))}


def customers_by_ref(conn, keys) -> dict[tuple[int, str], object]:
    """Customer rows for ``(shop id, customer ref)`` pairs, {pair: row}, in one query.

    Refs are matched as stored (truncated like ``fit_row`` does), and the
    rows keyed by the ref as asked, so a caller looks them up as it knows them.
    """
    wanted = {(shop_id, fit_ref(ref)): (shop_id, ref) for shop_id, ref in set(keys) if ref}
    if not wanted:
        return {}
    rows = conn.execute(
        select(customers).where(*pairs_in(customers.c.shop_id, customers.c.customer_ref, wanted))
    )
    return {
        wanted[(row.shop_id, row.customer_ref)]: row
        for row in rows
        if (row.shop_id, row.customer_ref) in wanted
    }


def fit_ref(ref: str) -> str:
    """A customer ref as the customers table stores it (see store/state.py)."""
    length = customers.c.customer_ref.type.length
    return ref if len(ref) <= length else fit_row(customers, {"customer_ref": ref})["customer_ref"]
