"""What Aftersale remembers between deliveries: the last state of each order and customer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from aftersale.core.platform import OrderState
from aftersale.core.steps import CONSENT_FIELDS
from aftersale.store.fit import fit_row
from aftersale.store.sql import for_update, insert_ignore, upsert
from aftersale.store.tables import customers, order_states

CUSTOMER_FIELDS = ("email", "phone", "first_name", "last_name", "locale", "tags")


def lock_order(conn: Connection, shop_id: int, order_ref: str | None) -> OrderState:
    """Load an order's state and hold its row lock until the transaction ends.

    Two deliveries about one order are then normalized one after the other,
    each against the state the other left, which is what makes diffing
    coalesced WooCommerce updates and ordering Shopify shipment events safe.
    """
    if order_ref is None:
        return OrderState()
    order_ref = _fit_ref(order_states, "order_ref", order_ref)
    row = conn.execute(
        for_update(
            conn,
            select(order_states).where(
                order_states.c.shop_id == shop_id, order_states.c.order_ref == order_ref
            ),
        )
    ).first()
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
    payloads (API 2025-01): a later order without it must not erase it.
    """
    ref = _fit_ref(customers, "customer_ref", str(customer["id"]))
    row = conn.execute(
        select(customers).where(customers.c.shop_id == shop_id, customers.c.customer_ref == ref)
    ).first()
    known = dict(row._mapping) if row else {}
    if known.get("redacted_at"):
        return {"id": ref, "redacted": True}
    values = {
        k: customer[k] for k in CUSTOMER_FIELDS + CONSENT_FIELDS if customer.get(k) is not None
    }
    if any(k in values for k in CONSENT_FIELDS):
        values["consent_updated_at"] = now
    if row is None:
        conn.execute(
            insert_ignore(conn, customers).values(
                fit_row(
                    customers,
                    {
                        "shop_id": shop_id,
                        "customer_ref": ref,
                        "created_at": now,
                        "updated_at": now,
                        **values,
                    },
                    warnings,
                )
            )
        )
    elif values:
        conn.execute(
            update(customers)
            .where(customers.c.shop_id == shop_id, customers.c.customer_ref == ref)
            .values(updated_at=now, **fit_row(customers, values, warnings))
        )
    merged = {k: known.get(k) for k in CUSTOMER_FIELDS + CONSENT_FIELDS if known.get(k) is not None}
    merged.update(customer)
    merged.update({k: v for k, v in values.items() if k in CONSENT_FIELDS})
    for k in CONSENT_FIELDS:
        if merged.get(k) is None and known.get(k) is not None:
            merged[k] = known[k]
    return merged


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
