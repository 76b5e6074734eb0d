"""The goes-with model and repurchase cycles, counted by the database from ``order_lines``.

``recompute`` rebuilds a shop's statistics in one transaction with three
``INSERT ... SELECT`` statements: orders per product (``product_stats``), the
self-join of order lines on the order counted per product pair with a minimum
support (``product_pairs``: together, confidence = P(other | product), lift =
confidence / P(other)), and the gaps between one customer's purchases of a
product or product type taken with ``LAG`` and their median picked with
``ROW_NUMBER`` (``repurchase_cycles``). SQLite and PostgreSQL run the same SQL;
order times are kept as Unix seconds so day arithmetic needs no dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, literal, select, tuple_
from sqlalchemy.engine import Connection

from aftersale.store.tables import (
    order_lines,
    product_pairs,
    product_stats,
    products,
    repurchase_cycles,
)

DAY = 86400.0
SCOPES = ("product", "type")
#: orders of evidence a pair's confidence is shrunk by when ranking: together / (orders +
#: PRIOR), so two orders out of two do not outrank sixty out of a hundred
PRIOR = 5.0
#: pairs kept per product, the strongest by that rank: a lookup reads at most this many
#: per product of the order, however popular (a best-seller pairs with thousands)
PAIRS_KEPT = 100


@dataclass
class Recomputed:
    orders: int
    products: int
    pairs: int
    cycles: int


def recompute(
    conn: Connection, shop_id: int, min_support: int, now: datetime, keep: int = PAIRS_KEPT
) -> Recomputed:
    """Rebuild the shop's pair statistics (the ``keep`` strongest per product) and
    repurchase cycles from its order lines."""
    for table in (product_pairs, product_stats, repurchase_cycles):
        conn.execute(delete(table).where(table.c.shop_id == shop_id))
    _analyze(conn, order_lines, products)  # the self-join's plan needs current row counts
    lines = order_lines.c
    total = conn.execute(
        select(func.count(func.distinct(lines.order_ref))).where(lines.shop_id == shop_id)
    ).scalar_one()
    _count_products(conn, shop_id, now)
    if total:
        _count_pairs(conn, shop_id, max(1, min_support), total, now, max(1, keep))
    for scope in SCOPES:
        _count_cycles(conn, shop_id, scope, now)
    _analyze(conn, product_stats, product_pairs, repurchase_cycles)  # for send-time lookups
    return Recomputed(
        orders=total,
        products=_rows(conn, product_stats, shop_id),
        pairs=_rows(conn, product_pairs, shop_id),
        cycles=_rows(conn, repurchase_cycles, shop_id),
    )


def _analyze(conn: Connection, *tables) -> None:
    """PostgreSQL: refresh the planner's statistics of tables just filled in bulk (without
    them a fresh table is planned as tiny: nested loops over a million lines, and lookups
    that scan). SQLite plans by its indexes and needs nothing."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE " + ", ".join(t.name for t in tables))


def _rows(conn: Connection, table, shop_id: int) -> int:
    """Rows of the shop in ``table`` (psycopg gives no row count for INSERT ... SELECT)."""
    return conn.execute(
        select(func.count()).select_from(table).where(table.c.shop_id == shop_id)
    ).scalar_one()


def _line_type():
    """A line's product type: the catalog's when known, else what the order said."""
    return func.coalesce(products.c.product_type, order_lines.c.product_type)


def _lines_with_catalog():
    return order_lines.outerjoin(
        products,
        and_(
            products.c.shop_id == order_lines.c.shop_id,
            products.c.product_ref == order_lines.c.product_ref,
        ),
    )


def _count_products(conn: Connection, shop_id: int, now: datetime) -> None:
    query = (
        select(
            order_lines.c.shop_id,
            order_lines.c.product_ref,
            func.count().label("orders"),
            func.max(_line_type()).label("product_type"),
            literal(now, product_stats.c.computed_at.type).label("computed_at"),
        )
        .select_from(_lines_with_catalog())
        .where(order_lines.c.shop_id == shop_id)
        .group_by(order_lines.c.shop_id, order_lines.c.product_ref)
    )
    conn.execute(
        insert(product_stats).from_select(
            ["shop_id", "product_ref", "orders", "product_type", "computed_at"], query
        )
    )


def _count_pairs(
    conn: Connection, shop_id: int, min_support: int, total: int, now, keep: int
) -> None:
    """Orders per product pair (the self-join grouped, cut at the support), then their
    confidence and lift from the products' own counts."""
    a, b = order_lines.alias("a"), order_lines.alias("b")
    sa, sb = product_stats.alias("sa"), product_stats.alias("sb")
    counted = (
        select(
            a.c.product_ref.label("product_ref"),
            b.c.product_ref.label("other_ref"),
            func.count().label("together"),
        )
        .select_from(
            a.join(
                b,
                and_(
                    b.c.shop_id == a.c.shop_id,
                    b.c.order_ref == a.c.order_ref,
                    b.c.product_ref != a.c.product_ref,
                ),
            )
        )
        .where(a.c.shop_id == shop_id)
        .group_by(a.c.product_ref, b.c.product_ref)
        .having(func.count() >= min_support)
        .subquery("counted")
    )
    query = select(
        literal(shop_id).label("shop_id"),
        counted.c.product_ref,
        counted.c.other_ref,
        counted.c.together,
        (counted.c.together * 1.0 / sa.c.orders).label("confidence"),
        (counted.c.together * float(total) / (sa.c.orders * sb.c.orders)).label("lift"),
        literal(now, product_pairs.c.computed_at.type).label("computed_at"),
    ).select_from(
        counted.join(
            sa, and_(sa.c.shop_id == shop_id, sa.c.product_ref == counted.c.product_ref)
        ).join(sb, and_(sb.c.shop_id == shop_id, sb.c.product_ref == counted.c.other_ref))
    )
    columns = ["shop_id", "product_ref", "other_ref", "together", "confidence", "lift"]
    conn.execute(insert(product_pairs).from_select([*columns, "computed_at"], query))
    _analyze(conn, product_pairs)  # planned as tiny, the delete below re-ranks per row
    _keep_strongest(conn, shop_id, keep)


def shrunk_confidence():
    """A pair's confidence shrunk toward zero for products seen in few orders: together /
    (orders + :data:`PRIOR`). The one rank both the trim here and a lookup
    (store/goes_with.py) order pairs by, so the pairs kept are the ones a lookup wants."""
    pair = product_pairs.c
    return pair.together / (pair.together / pair.confidence + PRIOR)


def _keep_strongest(conn: Connection, shop_id: int, keep: int) -> None:
    """Delete each product's pairs beyond its ``keep`` strongest, ranked as a lookup ranks
    them (store/goes_with.py: shrunk confidence, then lift). A second statement over the
    counted pairs rather than a window in the counting one: PostgreSQL planned that as a
    nested loop over the self-join (minutes for a million lines, against seconds)."""
    pair = product_pairs.c
    shrunk = shrunk_confidence()
    ranked = (
        select(
            pair.product_ref,
            pair.other_ref,
            func.row_number()
            .over(
                partition_by=pair.product_ref,
                order_by=(shrunk.desc(), pair.lift.desc(), pair.other_ref),
            )
            .label("rank"),
        )
        .where(pair.shop_id == shop_id)
        .subquery("ranked")
    )
    weaker = select(ranked.c.product_ref, ranked.c.other_ref).where(ranked.c.rank > keep)
    conn.execute(
        delete(product_pairs).where(
            pair.shop_id == shop_id,
            tuple_(pair.product_ref, pair.other_ref).in_(weaker),
        )
    )


def _count_cycles(conn: Connection, shop_id: int, scope: str, now: datetime) -> None:
    """Median days between one customer's consecutive purchases, per product or type."""
    key = order_lines.c.product_ref if scope == "product" else _line_type()
    epoch = order_lines.c.ordered_epoch
    previous = func.lag(epoch).over(partition_by=(order_lines.c.customer_ref, key), order_by=epoch)
    gaps = (
        select(key.label("ref"), (epoch - previous).label("gap"))
        .select_from(_lines_with_catalog())
        .where(
            order_lines.c.shop_id == shop_id,
            order_lines.c.customer_ref.is_not(None),
            key.is_not(None),
        )
        .subquery("gaps")
    )
    ranked = (
        select(
            gaps.c.ref,
            gaps.c.gap,
            func.row_number().over(partition_by=gaps.c.ref, order_by=gaps.c.gap).label("rn"),
            func.count().over(partition_by=gaps.c.ref).label("n"),
        )
        .where(gaps.c.gap > 0)
        .subquery("ranked")
    )
    # the middle one (odd n) or the two middle ones (even n), averaged
    middle = (
        select(
            literal(shop_id).label("shop_id"),
            literal(scope).label("scope"),
            ranked.c.ref,
            (func.avg(ranked.c.gap) / DAY).label("median_days"),
            ranked.c.n.label("observations"),
            literal(now, repurchase_cycles.c.computed_at.type).label("computed_at"),
        )
        .where(ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2]))
        .group_by(ranked.c.ref, ranked.c.n)
    )
    columns = ["shop_id", "scope", "ref", "median_days", "observations", "computed_at"]
    conn.execute(insert(repurchase_cycles).from_select(columns, middle))


def cycle(conn: Connection, shop_id: int, scope: str, ref: str):
    """The stored cycle of one product (``scope="product"``) or type, or None."""
    return conn.execute(
        select(repurchase_cycles).where(
            repurchase_cycles.c.shop_id == shop_id,
            repurchase_cycles.c.scope == scope,
            repurchase_cycles.c.ref == str(ref),
        )
    ).first()


def top_pairs(conn: Connection, shop_id: int, limit: int = 20):
    """The strongest pairs, each once (A with B, not also B with A), by lift then count."""
    p = product_pairs.c
    return conn.execute(
        select(product_pairs)
        .where(p.shop_id == shop_id, p.product_ref < p.other_ref)
        .order_by(p.lift.desc(), p.together.desc(), p.product_ref, p.other_ref)
        .limit(limit)
    ).all()


def cycles(conn: Connection, shop_id: int, limit: int = 20):
    c = repurchase_cycles.c
    return conn.execute(
        select(repurchase_cycles)
        .where(c.shop_id == shop_id)
        .order_by(c.observations.desc(), c.scope, c.ref)
        .limit(limit)
    ).all()
