"""What Aftersale remembers between deliveries: the last state of each order and customer."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from aftersale.core.events import parse_time
from aftersale.core.platform import OrderState
from aftersale.core.steps import CONSENT_FIELDS
from aftersale.store.fit import fit_row
from aftersale.store.sql import Locking, insert_ignore, upsert
from aftersale.store.tables import customer_consents, customers, order_states

CUSTOMER_FIELDS = ("email", "phone", "first_name", "last_name", "locale", "tags")


_ORDER_STATE = Locking(
    select(order_states).where(
        order_states.c.shop_id == bindparam("shop_id"),
        order_states.c.order_ref == bindparam("order_ref"),
    )
)
_CUSTOMER = select(customers).where(
    customers.c.shop_id == bindparam("shop_id"), customers.c.customer_ref == bindparam("ref")
)


def lock_order(conn: Connection, shop_id: int, order_ref: str | None) -> OrderState:
    """Load an order's state and hold its row lock until the transaction ends.

    Two deliveries about one order are then normalized one after the other,
    each against the state the other left, which is what makes diffing
    coalesced WooCommerce updates and ordering Shopify shipment events safe.
    """
    if order_ref is None:
        return OrderState()
    order_ref = _fit_ref(order_states, "order_ref", order_ref)
    row = conn.execute(_ORDER_STATE.on(conn), {"shop_id": shop_id, "order_ref": order_ref}).first()
    if row is None:
        return OrderState()
    return OrderState(order=row.order, extra=row.extra or {}, version=row.version)


def save_order(
    conn: Connection, shop_id: int, order_ref: str, state: OrderState, now: datetime
) -> None:
    customer_ref = (state.order or {}).get("customer_id")
    values = fit_row(
        order_states,
        {
            "shop_id": shop_id,
            "order_ref": order_ref,
            "customer_ref": customer_ref,
            "version": state.version,
            "order": state.order or {"id": order_ref},
            "extra": state.extra or {},
            "created_at": now,
            "updated_at": now,
        },
    )
    conn.execute(
        upsert(
            conn,
            order_states,
            ["shop_id", "order_ref"],
            ["customer_ref", "version", "order", "extra", "updated_at"],
        ),
        values,
    )


def remember_customer(
    conn: Connection, shop_id: int, customer: dict, now: datetime, warnings: list | None = None
) -> dict:
    """Merge what an event says about a customer into the stored record; return the merged view.

    Consent is kept per customer because Shopify stopped sending it in order
    payloads (API 2025-01): a later order without it must not erase it. A
    consent record (``email_marketing_consent`` / ``sms_marketing_consent``:
    state, opt-in level, when it changed, from the platform's consent webhooks)
    is applied only when it is not older than the one stored, so deliveries
    arriving out of order cannot re-grant a withdrawn consent; once the
    platform has reported a channel's consent that way, a bare flag (an
    order's marketing checkbox) no longer changes it.
    """
    ref = _fit_ref(customers, "customer_ref", str(customer["id"]))
    row = conn.execute(_CUSTOMER, {"shop_id": shop_id, "ref": ref}).first()
    known = dict(row._mapping) if row else {}
    if known.get("redacted_at"):
        return {"id": ref, "redacted": True}
    values = {
        k: customer[k] for k in CUSTOMER_FIELDS + CONSENT_FIELDS if customer.get(k) is not None
    }
    consent_at = _settle_consent(conn, shop_id, ref, customer, values, now)
    if consent_at is not None:
        values["consent_updated_at"] = consent_at
    if row is None:
        new = {"shop_id": shop_id, "customer_ref": ref, "created_at": now, "updated_at": now}
        conn.execute(insert_ignore(conn, customers), fit_row(customers, new | values, warnings))
    elif values:
        changed = fit_row(customers, values, warnings)
        conn.execute(
            _customer_update(tuple(sorted(changed))),
            {"w_shop_id": shop_id, "w_ref": ref, "v_updated_at": now}
            | {f"v_{name}": value for name, value in changed.items()},
        )
    merged = {k: known.get(k) for k in CUSTOMER_FIELDS + CONSENT_FIELDS if known.get(k) is not None}
    merged.update({k: v for k, v in customer.items() if k not in CONSENT_FIELDS})
    for k in CONSENT_FIELDS:
        value = values.get(k, known.get(k))
        if value is None:
            merged.pop(k, None)
        else:
            merged[k] = value
    return merged


@lru_cache(maxsize=64)
def _customer_update(names: tuple[str, ...]):
    """UPDATE customers SET updated_at and ``names``, built once per set of columns."""
    return (
        update(customers)
        .where(
            customers.c.shop_id == bindparam("w_shop_id"),
            customers.c.customer_ref == bindparam("w_ref"),
        )
        .values(updated_at=bindparam("v_updated_at"), **{n: bindparam(f"v_{n}") for n in names})
    )


def consent_channel(field: str) -> str:
    """``accepts_email_marketing`` -> ``email``: the channel a consent field is about."""
    return field.removeprefix("accepts_").removesuffix("_marketing")


def _settle_consent(
    conn: Connection, shop_id: int, ref: str, customer: dict, values: dict, now: datetime
) -> datetime | None:
    """Decide which consent flags in ``values`` stand; drop the others. When consent changed.

    Each channel's record is upserted only if it is not older than the stored
    one (a conditional upsert, so two workers cannot reorder it); a flag whose
    record lost, or a bare flag for a channel that has a record, is dropped.
    """
    changed_at = None
    stored = None
    for field in CONSENT_FIELDS:
        channel = consent_channel(field)
        record = customer.get(f"{channel}_marketing_consent")
        if isinstance(record, dict) and record.get("state"):
            at = _record_time(record)
            if _upsert_consent(conn, shop_id, ref, channel, record, at, now):
                changed_at = max(filter(None, (changed_at, at or now)))
            else:
                values.pop(field, None)
        elif field in values:
            if stored is None:
                stored = set(
                    conn.execute(
                        select(customer_consents.c.channel).where(
                            customer_consents.c.shop_id == shop_id,
                            customer_consents.c.customer_ref == ref,
                        )
                    ).scalars()
                )
            if channel in stored:
                values.pop(field)
            else:
                changed_at = now
    return changed_at


def _record_time(record: dict) -> datetime | None:
    value = record.get("consent_updated_at")
    if isinstance(value, datetime):
        return value
    try:
        return parse_time(value) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


def _upsert_consent(
    conn: Connection, shop_id: int, ref: str, channel: str, record: dict, at, now: datetime
) -> bool:
    """Store a channel's consent record unless a newer one is stored; True when stored."""
    row = fit_row(
        customer_consents,
        {
            "shop_id": shop_id,
            "customer_ref": ref,
            "channel": channel,
            "state": record.get("state"),
            "opt_in_level": record.get("opt_in_level"),
            "consent_updated_at": at,
            "updated_at": now,
        },
    )
    stmt = _consent_upsert(conn.dialect.name == "postgresql", at is not None)
    # RETURNING, not rowcount: psycopg reports no rowcount for an INSERT ... ON CONFLICT
    return conn.execute(stmt, row).first() is not None


@lru_cache(maxsize=4)
def _consent_upsert(on_postgresql: bool, dated: bool):
    """The conditional upsert of one channel's consent record, built once per dialect and
    whether the record is dated (an undated one only fills an empty place)."""
    dialect = postgresql if on_postgresql else sqlite
    stmt = dialect.insert(customer_consents)
    stored_at = customer_consents.c.consent_updated_at
    return stmt.on_conflict_do_update(
        index_elements=["shop_id", "customer_ref", "channel"],
        set_={c: stmt.excluded[c] for c in ("state", "opt_in_level", "consent_updated_at")}
        | {"updated_at": stmt.excluded.updated_at},
        where=(
            (stored_at.is_(None) | (stmt.excluded.consent_updated_at >= stored_at))
            if dated
            else stored_at.is_(None)
        ),
    ).returning(customer_consents.c.channel)


def get_consents(conn: Connection, shop_id: int, ref: str) -> dict:
    """A customer's consent records by channel: {channel: row}."""
    ref = _fit_ref(customers, "customer_ref", ref)
    found = conn.execute(
        select(customer_consents).where(
            customer_consents.c.shop_id == shop_id, customer_consents.c.customer_ref == ref
        )
    ).all()
    return {row.channel: row for row in found}


_CUSTOMER = select(customers).where(
    customers.c.shop_id == bindparam("shop_id"), customers.c.customer_ref == bindparam("ref")
)


def get_customer(conn: Connection, shop_id: int, ref: str):
    ref = _fit_ref(customers, "customer_ref", ref)
    return conn.execute(_CUSTOMER, {"shop_id": shop_id, "ref": ref}).first()


def _fit_ref(table, column: str, value: str) -> str:
    """A key as it is stored (truncated like ``fit_row`` does), so lookups find it."""
    length = table.c[column].type.length
    return value if len(value) <= length else fit_row(table, {column: value})[column]
