"""The shop's product catalog and the order lines the recommendation model counts.

Products come from product webhooks and ``aftersale catalog sync``; a change
older than the stored one (a delayed webhook after a sync) is ignored, so the
order they arrive in does not matter. Order lines are one row per order and
product, replaced each time the order is stored (webhook, reconcile or
backfill alike) and removed when the order is cancelled, so the model counts
what customers kept buying, once per order.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from aftersale.core.events import parse_time
from aftersale.store.actions import PENDING
from aftersale.store.sql import upsert
from aftersale.store.tables import actions, order_lines, products

PRODUCT_COLUMNS = (
    "title",
    "handle",
    "url",
    "image_url",
    "image_alt",
    "price",
    "currency",
    "product_type",
    "categories",
    "tags",
    "vendor",
    "published",
    "in_stock",
    "platform_updated_at",
    "updated_at",
)
#: order kinds after which the order no longer counts as bought
GONE = frozenset({"order.cancelled"})


def _clip(value, length: int):
    return value[:length] if isinstance(value, str) else value


def product_row(shop_id: int, product: dict, now: datetime) -> dict:
    """A ``products`` row from a canonical product (connectors/<platform>/products.py)."""
    return {
        "shop_id": shop_id,
        "product_ref": str(product["id"]),
        "title": _clip(product.get("title"), 500),
        "handle": _clip(product.get("handle"), 255),
        "url": _clip(product.get("url"), 2000),
        "image_url": _clip(product.get("image_url"), 2000),
        "image_alt": _clip(product.get("image_alt"), 500),
        "price": product.get("price"),
        "currency": product.get("currency"),
        "product_type": _clip(product.get("product_type"), 255),
        "categories": product.get("categories") or [],
        "tags": product.get("tags") or [],
        "vendor": _clip(product.get("vendor"), 255),
        "published": bool(product.get("published", True)),
        "in_stock": bool(product.get("in_stock", True)),
        "platform_updated_at": parse_time(product.get("updated_at")),
        "updated_at": now,
    }


def save_products(conn: Connection, shop_id: int, items: list[dict], now: datetime) -> int:
    """Insert or update products; one not newer than the stored version is left alone.

    Returns how many rows were written.
    """
    rows = [product_row(shop_id, p, now) for p in items if p.get("id")]
    if not rows:
        return 0
    stored = {
        r.product_ref: r.platform_updated_at
        for r in conn.execute(
            select(products.c.product_ref, products.c.platform_updated_at).where(
                products.c.shop_id == shop_id,
                products.c.product_ref.in_([r["product_ref"] for r in rows]),
            )
        )
    }
    fresh = [r for r in rows if not _stale(r, stored)]
    if fresh:
        conn.execute(
            upsert(conn, products, ["shop_id", "product_ref"], list(PRODUCT_COLUMNS)), fresh
        )
    return len(fresh)


def _stale(row: dict, stored: dict) -> bool:
    if row["product_ref"] not in stored:
        return False
    before, after = stored[row["product_ref"]], row["platform_updated_at"]
    return before is not None and after is not None and after < before


def delete_product(conn: Connection, shop_id: int, product_ref: str) -> int:
    return conn.execute(
        delete(products).where(products.c.shop_id == shop_id, products.c.product_ref == product_ref)
    ).rowcount


#: built once: every order's delivery runs these
_PRODUCTS = select(products).where(
    products.c.shop_id == bindparam("shop_id"),
    products.c.product_ref.in_(bindparam("refs", expanding=True)),
)
_DELETE_LINES = delete(order_lines).where(
    order_lines.c.shop_id == bindparam("shop_id"),
    order_lines.c.order_ref == bindparam("order_ref"),
)


def get_products(conn: Connection, shop_id: int, refs) -> dict[str, object]:
    """Stored products by reference (the ones not stored are absent)."""
    refs = sorted({str(r) for r in refs if r})
    if not refs:
        return {}
    rows = conn.execute(_PRODUCTS, {"shop_id": shop_id, "refs": refs})
    return {row.product_ref: row for row in rows}


def count_products(conn: Connection, shop_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(products).where(products.c.shop_id == shop_id)
    ).scalar_one()


def line_rows(shop_id: int, order: dict, customer_ref: str | None) -> list[dict]:
    """One row per product of the order (quantities of a product's variants added up)."""
    at = parse_time(order.get("created_at"))
    if at is None or not order.get("id"):
        return []
    lines: dict[str, dict] = {}
    for item in order.get("line_items") or []:
        ref = item.get("product_id") if isinstance(item, dict) else None
        if not ref:
            continue  # a custom line (no product) says nothing about the catalog
        ref = str(ref)[:128]
        line = lines.setdefault(
            ref,
            {
                "shop_id": shop_id,
                "order_ref": str(order["id"])[:128],
                "product_ref": ref,
                "customer_ref": str(customer_ref)[:128] if customer_ref else None,
                "product_type": _clip(item.get("product_type"), 255),
                "quantity": 0,
                "price": item.get("price"),
                "currency": order.get("currency"),
                "ordered_at": at,
                "ordered_epoch": int(at.timestamp()),
            },
        )
        line["quantity"] += _quantity(item.get("quantity"))
    return list(lines.values())


def _quantity(value) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def record_order(
    conn: Connection, shop_id: int, kind: str, order: dict, customer_ref: str | None
) -> int:
    """Keep the order's lines as the order now is; a cancelled order's lines are removed.

    An order that says nothing usable (no creation time, or no catalog products) leaves
    the lines stored from an earlier delivery as they are.
    """
    order_ref = str(order.get("id") or "")[:128]
    if not order_ref:
        return 0
    gone = kind in GONE or bool(order.get("cancelled_at"))
    rows = [] if gone else line_rows(shop_id, order, customer_ref or order.get("customer_id"))
    if rows or gone:
        conn.execute(_DELETE_LINES, {"shop_id": shop_id, "order_ref": order_ref})
    if rows:
        conn.execute(order_lines.insert(), rows)
    return len(rows)


def forget_customer(conn: Connection, shop_id: int, customer_ref: str) -> int:
    """A redacted customer's lines stay counted, no longer tied to them."""
    return conn.execute(
        update(order_lines)
        .where(order_lines.c.shop_id == shop_id, order_lines.c.customer_ref == customer_ref)
        .values(customer_ref=None)
    ).rowcount


def customer_lines(conn: Connection, shop_id: int, customer_ref: str, exclude_order=None):
    """The customer's stored order lines, oldest first (``exclude_order`` left out)."""
    query = select(order_lines).where(
        order_lines.c.shop_id == shop_id, order_lines.c.customer_ref == str(customer_ref)
    )
    if exclude_order:
        query = query.where(
            or_(order_lines.c.order_ref != str(exclude_order), order_lines.c.order_ref.is_(None))
        )
    return conn.execute(query.order_by(order_lines.c.ordered_epoch)).all()


def reminders_for(
    conn: Connection, shop_id: int, customer_ref: str, rules, products_bought, exclude_order: str
) -> list[int]:
    """Pending actions of ``rules`` for the customer's other orders that had one of
    ``products_bought``: the reminders a new order of the same product makes pointless."""
    rules, bought = sorted(rules), sorted({str(p) for p in products_bought if p})
    if not rules or not bought or not customer_ref:
        return []
    same_product = select(order_lines.c.order_ref).where(
        order_lines.c.shop_id == shop_id,
        order_lines.c.customer_ref == str(customer_ref),
        order_lines.c.product_ref.in_(bought),
    )
    return list(
        conn.execute(
            select(actions.c.id).where(
                actions.c.shop_id == shop_id,
                actions.c.customer_ref == str(customer_ref),
                actions.c.rule.in_(rules),
                actions.c.status.in_([s.value for s in PENDING]),
                actions.c.order_ref != str(exclude_order),
                actions.c.order_ref.in_(same_product),
            )
        ).scalars()
    )
