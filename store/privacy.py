"""What the platforms' privacy requests do to the stored rows: find, export, erase, delete.

Shopify's compliance webhooks (``customers/redact``, ``customers/data_request``,
``shop/redact``) and ``app/uninstalled`` are decided in ``workers/privacy.py``;
this module is the SQL. A customer is found by every handle the request gives
(platform id, emails, phones, listed orders) and by what the stored rows add
to those (the orders' customer, the customer's guest refs), so an erasure
reaches rows that mention them under any of those names.

Erasure is irreversible and idempotent: personal fields are nulled, JSON
payloads lose their personal keys and any remaining string mentioning the
person, raw webhook bodies and headers of their deliveries are emptied, and
suppressions keep only the keyed hash of an address, so an unsubscribed
person stays unsubscribed without being named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.engine import Connection

from aftersale.store.actions import PENDING, ActionStatus
from aftersale.store.messages import address_hash
from aftersale.store.redaction import Person, scrub
from aftersale.store.sql import insert_ignore
from aftersale.store.tables import (
    actions,
    customers,
    deliveries,
    events,
    link_clicks,
    messages,
    metadata,
    order_states,
    preferences,
    shops,
    suppressions,
)

#: tables erasure rewrites row by row; any other table keyed by (shop_id, customer_ref)
#: (per-customer bookkeeping such as consents) loses the person's rows
REWRITTEN = frozenset({"customers", "order_states", "events", "actions"})


@dataclass
class Footprint:
    """The ids of one person's rows, table by table."""

    person: Person
    customer_refs: list[str]
    order_refs: list[str]
    event_ids: list[int]
    delivery_ids: list[int]
    action_ids: list[int]
    message_ids: list[int]


def find(conn: Connection, shop_id: int, person: Person) -> Footprint:
    """Every row of the shop that is about ``person``; ``person`` learns their other names."""
    for row in _customers(conn, shop_id, person):
        person.refs.add(row.customer_ref)
        person.add_contact(row.email, row.phone)
        person.strings.update(s for s in (row.first_name, row.last_name) if s)
    states = conn.execute(
        select(order_states).where(
            order_states.c.shop_id == shop_id,
            or_(
                order_states.c.order_ref.in_(person.orders),
                order_states.c.customer_ref.in_(person.refs),
            ),
        )
    ).all()
    for row in states:
        person.orders.add(row.order_ref)
        if row.customer_ref:
            person.refs.add(row.customer_ref)
        person.learn(row.order)
    event_rows = conn.execute(
        select(events.c.id, events.c.delivery_id, events.c.payload).where(
            events.c.shop_id == shop_id,
            or_(events.c.customer_ref.in_(person.refs), events.c.order_ref.in_(person.orders)),
        )
    ).all()
    for row in event_rows:
        person.learn({k: v for k, v in (row.payload or {}).items() if k in ("customer", "order")})
    delivery_ids = {r.delivery_id for r in event_rows if r.delivery_id} | set(
        _deliveries_mentioning(conn, shop_id, person)
    )
    event_ids = [r.id for r in event_rows]
    contacts = list(person.emails | person.phones)
    action_ids = (
        conn.execute(
            select(actions.c.id).where(
                actions.c.shop_id == shop_id,
                or_(
                    actions.c.customer_ref.in_(person.refs),
                    actions.c.order_ref.in_(person.orders),
                    actions.c.event_id.in_(event_ids),
                    func.lower(actions.c.recipient).in_(contacts),
                ),
            )
        )
        .scalars()
        .all()
    )
    message_ids = (
        conn.execute(
            select(messages.c.id).where(
                messages.c.shop_id == shop_id,
                or_(
                    messages.c.action_id.in_(action_ids),
                    func.lower(messages.c.recipient).in_(contacts),
                ),
            )
        )
        .scalars()
        .all()
    )
    return Footprint(
        person,
        sorted(person.refs),
        sorted(person.orders),
        event_ids,
        sorted(delivery_ids),
        list(action_ids),
        list(message_ids),
    )


def export(conn: Connection, shop_id: int, found: Footprint, keys) -> dict:
    """Everything stored about the person, as JSON-ready dicts (``customers/data_request``)."""

    def dump(table, *where):
        return [_plain(dict(r._mapping)) for r in conn.execute(select(table).where(*where)).all()]

    person = found.person
    return {
        "customers": dump(
            customers,
            customers.c.shop_id == shop_id,
            customers.c.customer_ref.in_(found.customer_refs),
        ),
        "orders": dump(
            order_states,
            order_states.c.shop_id == shop_id,
            order_states.c.order_ref.in_(found.order_refs),
        ),
        "events": dump(events, events.c.id.in_(found.event_ids)),
        "deliveries": dump(deliveries, deliveries.c.id.in_(found.delivery_ids)),
        "actions": dump(actions, actions.c.id.in_(found.action_ids)),
        "messages": dump(messages, messages.c.id.in_(found.message_ids)),
        "link_clicks": dump(link_clicks, link_clicks.c.action_id.in_(found.action_ids)),
        "suppressions": dump(
            suppressions,
            suppressions.c.shop_id == shop_id,
            suppressions.c.address.in_(_suppression_forms(person, keys)),
        ),
        # preference-centre choices; erase() deletes them with the other per-customer rows
        "preferences": dump(
            preferences,
            preferences.c.shop_id == shop_id,
            preferences.c.customer_ref.in_(found.customer_refs),
        ),
    }


def erase(conn: Connection, shop_id: int, found: Footprint, keys, now: datetime) -> dict:
    """Irreversibly remove the person's data from every table; counts of rows touched."""
    person = found.person
    needles = person.needles()
    counts = {
        "customers": conn.execute(
            update(customers)
            .where(customers.c.shop_id == shop_id, customers.c.customer_ref.in_(person.refs))
            .values(
                email=None,
                phone=None,
                first_name=None,
                last_name=None,
                tags=None,
                redacted_at=func.coalesce(customers.c.redacted_at, now),
                updated_at=now,
            )
        ).rowcount
    }
    counts["order_states"] = _rewrite_json(
        conn,
        order_states,
        ("order", "extra"),
        needles,
        order_states.c.shop_id == shop_id,
        order_states.c.order_ref.in_(found.order_refs),
    )
    counts["events"] = _rewrite_json(
        conn, events, ("payload",), needles, events.c.id.in_(found.event_ids)
    )
    counts["deliveries"] = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(found.delivery_ids))
        .values(body=b"", headers={})
    ).rowcount
    counts["actions"] = _rewrite_json(
        conn,
        actions,
        ("params", "result", "last_error"),
        needles,
        actions.c.id.in_(found.action_ids),
        fixed={"recipient": None, "subject": None},
    )
    counts["messages"] = _rewrite_json(
        conn,
        messages,
        ("error",),
        needles,
        messages.c.id.in_(found.message_ids),
        fixed={"recipient": None, "subject": None, "response": None},
    )
    counts["link_clicks"] = conn.execute(
        update(link_clicks)
        .where(link_clicks.c.action_id.in_(found.action_ids))
        .values(action_id=None)
    ).rowcount
    counts["suppressions"] = _hash_suppressions(conn, shop_id, person, keys)
    for table in metadata.sorted_tables:
        if table.name not in REWRITTEN and {"shop_id", "customer_ref"} <= set(table.c.keys()):
            counts[str(table.name)] = conn.execute(
                delete(table).where(
                    table.c.shop_id == shop_id, table.c.customer_ref.in_(found.customer_refs)
                )
            ).rowcount
    return counts


def mark_redacted(conn: Connection, shop_id: int, ref: str, now: datetime) -> None:
    """A tombstone for a customer never stored, so later deliveries about them stay quiet."""
    conn.execute(
        insert_ignore(conn, customers).values(
            shop_id=shop_id, customer_ref=ref, created_at=now, updated_at=now, redacted_at=now
        )
    )


def cancel_pending(
    conn: Connection, shop_id: int, reason: str, now: datetime, action_ids=None
) -> list[int]:
    """Skip the shop's pending actions (only ``action_ids`` when given) with ``reason``."""
    where = [actions.c.shop_id == shop_id, actions.c.status.in_([s.value for s in PENDING])]
    if action_ids is not None:
        where.append(actions.c.id.in_(action_ids))
    return list(
        conn.execute(
            update(actions)
            .where(*where)
            .values(
                status=ActionStatus.SKIPPED.value,
                skip_reason=reason,
                last_error=f"cancelled: {reason}",
                finished_at=now,
                updated_at=now,
                lease_expires_at=None,
            )
            .returning(actions.c.id)
        ).scalars()
    )


def mark_uninstalled(conn: Connection, shop_id: int, now: datetime) -> None:
    """The app was removed: the shop stays (its ``shop/redact`` comes later) without access."""
    conn.execute(
        update(shops)
        .where(shops.c.id == shop_id)
        .values(status="uninstalled", credentials=None, updated_at=now)
    )


def delete_shop(conn: Connection, shop_id: int) -> dict:
    """Every row of the shop in every table, children first (not relying on the FK
    cascades, and reaching tables added later); counts by table."""
    counts = {}
    for table in reversed(metadata.sorted_tables):
        if table is not shops and "shop_id" in table.c:
            counts[str(table.name)] = conn.execute(
                delete(table).where(table.c.shop_id == shop_id)
            ).rowcount
    counts["shops"] = conn.execute(delete(shops).where(shops.c.id == shop_id)).rowcount
    return counts


def expire_bodies(conn: Connection, before: datetime, limit: int, final_statuses) -> int:
    """Empty the body and headers of up to ``limit`` finished deliveries received before
    ``before``; the row, its status and outcome stay. How many were emptied."""
    ids = (
        conn.execute(
            select(deliveries.c.id)
            .where(
                deliveries.c.status.in_(final_statuses),
                deliveries.c.received_at < before,
                func.length(deliveries.c.body) > 0,
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0
    return conn.execute(
        update(deliveries).where(deliveries.c.id.in_(ids)).values(body=b"", headers={})
    ).rowcount


# -- helpers ---------------------------------------------------------------------


def _customers(conn, shop_id: int, person: Person):
    return conn.execute(
        select(customers).where(
            customers.c.shop_id == shop_id,
            or_(
                customers.c.customer_ref.in_(person.refs),
                func.lower(customers.c.email).in_(person.emails),
                customers.c.phone.in_(person.phones),
            ),
        )
    ).all()


def _deliveries_mentioning(conn, shop_id: int, person: Person) -> list[int]:
    """Deliveries whose raw body names the person (an id, email or phone), found in SQL.

    This catches bodies that made no event (``orders/updated``, stale or ignored ones).
    The body is bytes: PostgreSQL's ``position`` and SQLite's ``instr`` search it as such.
    """
    tokens = {t for t in person.emails | person.phones | person.refs | person.orders if t}
    tokens = {t.removeprefix("guest:") for t in tokens if len(t) >= 5}
    if not tokens:
        return []
    found_in = (
        "position(:needle in body) > 0"
        if conn.dialect.name == "postgresql"
        else "instr(body, :needle) > 0"
    )
    ids: set[int] = set()
    for token in tokens:
        ids.update(
            conn.execute(
                select(deliveries.c.id).where(
                    deliveries.c.shop_id == shop_id,
                    text(found_in).bindparams(needle=token.encode()),
                )
            ).scalars()
        )
    return sorted(ids)


def _rewrite_json(conn, table, columns, needles, *where, fixed=None) -> int:
    """Scrub ``columns`` of the matching rows in Python and write them back; rows touched."""
    key = table.primary_key.columns.values()
    rows = conn.execute(select(*key, *(table.c[c] for c in columns)).where(*where)).all()
    for row in rows:
        values = {c: scrub(getattr(row, c), needles) for c in columns}
        values.update(fixed or {})
        conn.execute(
            update(table).where(*(col == getattr(row, col.name) for col in key)).values(**values)
        )
    return len(rows)


def _hash_suppressions(conn, shop_id: int, person: Person, keys) -> int:
    """Plain suppressed addresses of the person become their keyed hash (kept suppressed)."""
    if not keys:
        return 0
    touched = 0
    for channel_address in sorted(person.emails | person.phones):
        hashed = address_hash(keys[0], channel_address)
        for row in conn.execute(
            select(suppressions).where(
                suppressions.c.shop_id == shop_id,
                func.lower(suppressions.c.address) == channel_address.lower(),
            )
        ).all():
            twin = conn.execute(
                select(suppressions.c.id).where(
                    suppressions.c.shop_id == shop_id,
                    suppressions.c.channel == row.channel,
                    suppressions.c.address == hashed,
                )
            ).first()
            if twin is None:
                conn.execute(
                    update(suppressions)
                    .where(suppressions.c.id == row.id)
                    .values(address=hashed, source=None)
                )
            else:
                conn.execute(delete(suppressions).where(suppressions.c.id == row.id))
            touched += 1
    return touched


def _suppression_forms(person: Person, keys) -> list[str]:
    forms = set()
    for address in person.emails | person.phones:
        forms.add(address.lower())
        forms.update(address_hash(k, address) for k in keys if k)
    return sorted(forms)


def _plain(row: dict) -> dict:
    """A row as JSON can hold it: bytes decoded (webhook bodies are UTF-8 JSON)."""
    return {
        str(k): (bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview) else v)
        for k, v in row.items()
    }
