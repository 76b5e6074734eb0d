"""Customer history facts for rules: what a customer bought before, read from stored orders.

``customer.orders_count``, ``customer.total_spent``, ``customer.last_order_at``
(the previous order, before this one) and ``customer.has_purchased: {sku: ...}``
let a rule say "first order only", "spent over 500", "no order for 60 days" or
"bought baby products years ago". They come from the shop's stored
``order.created`` events of the customer (one indexed query), and only when a
loaded rule asks about them, so rule sets that do not pay nothing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from aftersale.core.events import iso, money, parse_time
from aftersale.rules.conditions import Condition, resolve
from aftersale.rules.durations import parse_duration
from aftersale.rules.errors import Invalid

HISTORY_FIELDS = frozenset({"orders_count", "total_spent", "last_order_at", "purchases"})
PURCHASE_KEYS = ("sku", "product_id", "variant_id", "product_type", "title")


def uses_history(condition) -> bool:
    """Whether a compiled condition reads any history fact."""
    if isinstance(condition, HasPurchased):
        return True
    keys = getattr(condition, "keys", None)
    if keys and len(keys) >= 2 and keys[0] == "customer" and keys[1] in HISTORY_FIELDS:
        return True
    children = list(getattr(condition, "children", ()) or ())
    child = getattr(condition, "child", None)
    if child is not None:
        children.append(child)
    return any(uses_history(c) for c in children)


def customer_history(rows, current_order_ref: str | None) -> dict:
    """Facts from the customer's stored orders (``rows``: order_ref, occurred_at, and the
    order's total_price and line_items, as store.events.customer_orders reads them)."""
    orders: dict[str, tuple[datetime, dict]] = {}
    for row in rows:
        items = row.line_items if isinstance(row.line_items, list) else []
        order = {"total_price": row.total_price, "line_items": items}
        orders.setdefault(row.order_ref, (row.occurred_at, order))
    spent = Decimal(0)
    for _, order in orders.values():
        try:
            spent += Decimal(str(order.get("total_price") or 0))
        except InvalidOperation:
            continue
    earlier = [(at, order) for ref, (at, order) in orders.items() if ref != current_order_ref]
    return {
        "orders_count": len(orders),
        "total_spent": money(spent),
        "last_order_at": iso(max(at for at, _ in earlier)) if earlier else None,
        "purchases": [
            {**{k: item.get(k) for k in PURCHASE_KEYS}, "at": iso(at)}
            for at, order in earlier
            for item in order.get("line_items") or []
        ],
    }


def with_history(customer: dict | None, history: dict) -> dict:
    """The customer as rules see it: the platform's own count kept when it knows more."""
    merged = {**(customer or {}), **history}
    platform_count = (customer or {}).get("orders_count")
    if isinstance(platform_count, int) and platform_count > history["orders_count"]:
        merged["orders_count"] = platform_count
    return merged


class HasPurchased(Condition):
    """``customer.has_purchased: {sku: [A, B], older_than: 1y}``: an earlier order had such an item."""

    __slots__ = ("spec", "wanted", "within", "older_than")

    def __init__(self, spec):
        if not isinstance(spec, dict) or not spec:
            raise Invalid(
                "has_purchased takes item fields, e.g. {sku: BABY-1} or {product_type: [Baby]}"
            )
        self.spec = spec
        self.wanted = {}
        self.within = self.older_than = None
        for key, value in spec.items():
            if key in ("within", "older_than"):
                try:
                    setattr(self, key, parse_duration(value))
                except ValueError as exc:
                    raise Invalid(str(exc), (key,)) from exc
            elif key in PURCHASE_KEYS:
                values = value if isinstance(value, list) else [value]
                self.wanted[key] = frozenset(str(v) for v in values)
            else:
                raise Invalid(
                    f"has_purchased has no {key!r}; use {', '.join(PURCHASE_KEYS)},"
                    " within or older_than",
                    (key,),
                )
        if not self.wanted:
            raise Invalid("has_purchased needs at least one item field, e.g. {sku: BABY-1}")

    def __call__(self, ctx):
        now = ctx.get("_now")
        for item in resolve(ctx, ("customer", "purchases")):
            for purchase in item if isinstance(item, list) else [item]:
                if self._matches(purchase, now):
                    return True
        return False

    def _matches(self, purchase: dict, now) -> bool:
        if not isinstance(purchase, dict):
            return False
        for key, allowed in self.wanted.items():
            if str(purchase.get(key)) not in allowed:
                return False
        if (self.within or self.older_than) and now is not None:
            try:
                at = parse_time(purchase.get("at"))
            except ValueError:
                return False
            if at is None:
                return False
            if self.within and now - at > self.within:
                return False
            if self.older_than and now - at <= self.older_than:
                return False
        return True

    def explain(self, ctx):
        if self(ctx):
            return None
        count = len((ctx.get("customer") or {}).get("purchases") or [])
        return f"customer.has_purchased {self.spec!r}: no such earlier purchase ({count} items)"


# -- catalog facts (issue 25): what kinds of things the customer buys, from order lines -------

CATALOG_FIELDS = frozenset(
    {"product_types", "categories", "type_history", "lifetime_orders", "lifetime_spent", "currency"}
)


def catalog_history(lines: list[dict], catalog: dict) -> dict:
    """Facts from the customer's order lines (``store.catalog.line_rows`` shaped dicts).

    ``catalog``: product ref -> its ``products`` row, for the type and categories the
    shop gives the product now (a line keeps the type its order carried otherwise).
    ``lifetime_spent`` is merchandise: line prices times quantities, in the shop's
    currency, before discounts, shipping and tax; cancelled orders are not in the lines.
    """
    types: dict[str, dict] = {}
    categories: list[str] = []
    orders: set[str] = set()
    spent = Decimal(0)
    currency = None
    for line in sorted(lines, key=lambda row: row["ordered_at"]):
        product = catalog.get(line["product_ref"])
        kind = (product.product_type if product is not None else None) or line.get("product_type")
        for name in (product.categories if product is not None else None) or (
            [kind] if kind else []
        ):
            if name and name not in categories:
                categories.append(name)
        orders.add(line["order_ref"])
        currency = line.get("currency") or currency
        spent += _line_total(line)
        if kind:
            seen = types.setdefault(kind, {"product_type": kind, "first_at": None, "orders": set()})
            seen["first_at"] = seen["first_at"] or iso(line["ordered_at"])
            seen["last_at"] = iso(line["ordered_at"])
            seen["orders"].add(line["order_ref"])
    return {
        "product_types": list(types),
        "categories": categories,
        "type_history": [{**t, "orders": len(t["orders"])} for t in types.values()],
        "lifetime_orders": len(orders),
        "lifetime_spent": money(spent),
        "currency": currency,
    }


def _line_total(line: dict) -> Decimal:
    try:
        return Decimal(str(line.get("price") or 0)) * int(line.get("quantity") or 1)
    except (InvalidOperation, ValueError):
        return Decimal(0)
