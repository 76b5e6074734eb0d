"""Recommendations for an order at send time: what goes with it, and why.

First the products most often bought with the order's products
(``product_pairs``, strongest lift first); when those run short (a new or
rarely bought product has no pair above the minimum support), the shop's
best-sellers of the same product type, then those sharing a tag. Never what
the customer already bought, and never an unpublished or out-of-stock
product. Each result says which of these it came from, with its numbers,
for ``aftersale recommend``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Connection

from aftersale.store.recommend import shrunk_confidence
from aftersale.store.tables import (
    order_lines,
    order_states,
    product_pairs,
    product_stats,
    products,
)

#: best-sellers looked at for the type and tag fallbacks
FALLBACK_POOL = 200


@dataclass
class Recommendation:
    product: object  # a ``products`` row
    reason: str  # bought_with | same_type | same_tag
    because: str | None = None  # the order's product (bought_with) or the type / tag
    together: int = 0  # orders with both (bought_with)
    confidence: float = 0.0
    lift: float = 0.0
    orders: int = 0  # orders with the product (fallbacks: how much of a best-seller)

    def why(self) -> str:
        if self.reason == "bought_with":
            return (
                f"bought with {self.because} in {self.together} orders"
                f" (confidence {self.confidence:.2f}, lift {self.lift:.2f})"
            )
        what = "product type" if self.reason == "same_type" else "tag"
        return f"best-seller of the same {what} {self.because!r} ({self.orders} orders)"


def _sellable():
    return and_(products.c.published.is_(True), products.c.in_stock.is_(True))


def owned_by(conn: Connection, shop_id: int, customer_ref: str | None) -> set[str]:
    """Every product the customer has bought in the shop."""
    if not customer_ref:
        return set()
    rows = conn.execute(
        select(order_lines.c.product_ref).where(
            order_lines.c.shop_id == shop_id, order_lines.c.customer_ref == str(customer_ref)
        )
    )
    return {r.product_ref for r in rows}


def recommend(
    conn: Connection,
    shop_id: int,
    order_products: list[str],
    customer_ref: str | None = None,
    n: int = 3,
) -> list[Recommendation]:
    """Up to ``n`` products to suggest after an order of ``order_products``."""
    bought = [str(r) for r in order_products if r]
    found = _bought_with(conn, shop_id, bought, customer_ref, n)
    if len(found) < n:  # the rare path: what the customer owns is read only here
        skip = set(bought) | owned_by(conn, shop_id, customer_ref)
        skip |= {r.product.product_ref for r in found}
        found += _fallback(conn, shop_id, bought, skip, n - len(found))
    return found


def _pairs_statement():
    """The send-time pair lookup, built once (building a statement costs more than the
    indexed query it runs): pairs of the order's products, sellable, not owned by the
    customer, strongest first."""
    pair = product_pairs.c
    # uncorrelated: read once through the (shop, customer) index, not per pair
    owned = select(order_lines.c.product_ref).where(
        order_lines.c.shop_id == bindparam("shop_id"),
        order_lines.c.customer_ref == bindparam("customer"),
    )
    return (
        select(
            products, pair.product_ref.label("because"), pair.together, pair.confidence, pair.lift
        )
        .select_from(
            product_pairs.join(
                products,
                and_(products.c.shop_id == pair.shop_id, products.c.product_ref == pair.other_ref),
            )
        )
        .where(
            pair.shop_id == bindparam("shop_id"),
            pair.product_ref.in_(bindparam("bought", expanding=True)),
            pair.other_ref.not_in(bindparam("bought", expanding=True)),
            _sellable(),
            pair.other_ref.not_in(owned),
        )
        .order_by(shrunk_confidence().desc(), pair.lift.desc(), pair.other_ref)
        .limit(bindparam("limit"))
    )


_PAIRS = _pairs_statement()


def _bought_with(conn, shop_id: int, bought: list[str], customer_ref, n: int):
    if not bought or n <= 0:
        return []
    rows = conn.execute(
        _PAIRS,
        {
            "shop_id": shop_id,
            "bought": bought,
            "customer": str(customer_ref) if customer_ref else None,
            "limit": n * len(bought),  # one product can pair with each of the order's
        },
    ).all()
    found: list[Recommendation] = []
    for row in rows:
        if any(f.product.product_ref == row.product_ref for f in found):
            continue
        found.append(
            Recommendation(row, "bought_with", row.because, row.together, row.confidence, row.lift)
        )
        if len(found) == n:
            break
    return found


def _fallback(conn, shop_id: int, bought: list[str], skip: set[str], n: int):
    """Best-sellers sharing the order's product type, then a tag (both read through
    ``product_stats``' indexes: a lookup stays cheap in a large catalog)."""
    if n <= 0:
        return []
    types, tags = _kinds_of(conn, shop_id, bought)
    found: list[Recommendation] = []
    if types:
        rows = _best_sellers(conn, shop_id, n + len(skip), product_stats.c.product_type.in_(types))
        found += _pick(rows, "same_type", lambda row: row.product_type, skip, n)
    if tags and len(found) < n:
        rows = _best_sellers(conn, shop_id, FALLBACK_POOL + len(skip))

        def shared(row):
            return next((t for t in tags if t in (row.tags or [])), None)

        found += _pick(rows, "same_tag", shared, skip, n - len(found))
    return found


def _kinds_of(conn, shop_id: int, bought: list[str]) -> tuple[list[str], list[str]]:
    """The product types and tags of the order's products (the catalog's, else the type
    the orders carried)."""
    if not bought:
        return [], []
    mine = conn.execute(
        select(products.c.product_type, products.c.tags).where(
            products.c.shop_id == shop_id, products.c.product_ref.in_(bought)
        )
    ).all()
    types = [r.product_type for r in mine if r.product_type]
    if not types:
        types = [
            t
            for (t,) in conn.execute(
                select(product_stats.c.product_type).where(
                    product_stats.c.shop_id == shop_id, product_stats.c.product_ref.in_(bought)
                )
            )
            if t
        ]
    return types, [t for r in mine for t in (r.tags or [])]


def _best_sellers(conn, shop_id: int, limit: int, *where):
    return conn.execute(
        select(products, product_stats.c.orders.label("sold"))
        .select_from(
            product_stats.join(
                products,
                and_(
                    products.c.shop_id == product_stats.c.shop_id,
                    products.c.product_ref == product_stats.c.product_ref,
                ),
            )
        )
        .where(product_stats.c.shop_id == shop_id, _sellable(), *where)
        .order_by(product_stats.c.orders.desc(), product_stats.c.product_ref)
        .limit(limit)
    ).all()


def _pick(rows, reason: str, because, skip: set[str], n: int) -> list[Recommendation]:
    found = []
    for row in rows:
        if len(found) == n:
            break
        why = because(row)
        if row.product_ref in skip or why is None:
            continue
        skip.add(row.product_ref)
        found.append(Recommendation(row, reason, why, orders=row.sold))
    return found


def order_products(conn: Connection, shop_id: int, order_ref: str) -> tuple[list[str], str | None]:
    """(the order's product refs, its customer) from the stored order lines or order state."""
    rows = conn.execute(
        select(order_lines.c.product_ref, order_lines.c.customer_ref).where(
            order_lines.c.shop_id == shop_id, order_lines.c.order_ref == str(order_ref)
        )
    ).all()
    if rows:
        return [r.product_ref for r in rows], next((r.customer_ref for r in rows), None)
    state = conn.execute(
        select(order_states.c.order, order_states.c.customer_ref).where(
            order_states.c.shop_id == shop_id, order_states.c.order_ref == str(order_ref)
        )
    ).first()
    if state is None:
        return [], None
    items = (state.order or {}).get("line_items") or []
    refs = [str(i["product_id"]) for i in items if isinstance(i, dict) and i.get("product_id")]
    return refs, state.customer_ref or (state.order or {}).get("customer_id")
