"""What the stored catalog adds to an order before rules and templates see it, and the
facts rules judge by that come from the catalog and the order lines.

No connector can fill a line item's product type, tags or image from the order
alone (Shopify's line items have no ``product_type``; WooCommerce's have
neither type nor tags), so enrichment (rules/pipeline.py ``enrich``) looks the
order's products up in ``products`` (one query) and fills what the line item
lacks. The platform's own values win where it sent them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aftersale.core.events import Event, iso, parse_time
from aftersale.rules.history import CATALOG_FIELDS, HasPurchased, catalog_history
from aftersale.rules.repurchase import DUE_PATH
from aftersale.store import catalog, goes_with, recommend

#: line item field <- products column, filled only when the item lacks it
FILLED = {
    "product_type": "product_type",
    "vendor": "vendor",
    "tags": "tags",
    "categories": "categories",
    "image_url": "image_url",
    "image_alt": "image_alt",
}


def fill_order(conn, shop_id: int, order: dict | None) -> dict | None:
    """The order with its line items completed from the catalog; None when nothing changed."""
    items = (order or {}).get("line_items") or []
    refs = [i.get("product_id") for i in items if isinstance(i, dict) and i.get("product_id")]
    if not refs:
        return None
    known = catalog.get_products(conn, shop_id, refs)
    if not known:
        return None
    filled = []
    for item in items:
        product = known.get(str(item.get("product_id"))) if isinstance(item, dict) else None
        if product is None:
            filled.append(item)
            continue
        extra = {
            key: getattr(product, column)
            for key, column in FILLED.items()
            if item.get(key) in (None, "", []) and getattr(product, column) not in (None, "", [])
        }
        filled.append({**item, **extra} if extra else item)
    return {**order, "line_items": filled}


# -- facts for judging: repurchase due, the customer's catalog history, recommendations -------

#: recommendations counted for ``recommendations.count`` (a mail shows at most this many)
MAX_RECOMMENDATIONS = 12
REPURCHASE_FIELDS = frozenset({"repurchase_due_at", "repurchase_cycle"})


def needs(ruleset, kind: str) -> frozenset[str]:
    """Which facts the rules listening to ``kind`` read (computed once per rule set and
    kind): ``repurchase``, ``customer`` (catalog history), ``purchase_types`` and
    ``recommendations``. Events no such rule listens to cost nothing."""
    cache = ruleset.__dict__.get("_catalog_needs")
    if cache is None:
        cache = {}
        object.__setattr__(ruleset, "_catalog_needs", cache)
    known = cache.get(kind)
    if known is None:
        found: set[str] = set()
        for rule in ruleset.for_kind(kind):
            if rule.wait_fallback is not None or rule.wait_until == tuple(DUE_PATH.split(".")):
                found.add("repurchase")
            for condition in _conditions(rule.condition):
                found |= _needed_by(condition)
        known = cache[kind] = frozenset(found)
    return known


def uses_catalog(ruleset) -> bool:
    """Whether any enabled rule reads what the product catalog gives (so a Shopify install
    subscribes to the product topics and asks for ``read_products``)."""
    return any(needs(ruleset, kind) for kind in ruleset.by_kind)


def _conditions(condition):
    yield condition
    children = list(getattr(condition, "children", ()) or ())
    child = getattr(condition, "child", None)
    if child is not None:
        children.append(child)
    for one in children:
        yield from _conditions(one)


def _needed_by(condition) -> set[str]:
    if isinstance(condition, HasPurchased):
        return {"purchase_types"} if "product_type" in condition.wanted else set()
    keys = getattr(condition, "keys", None) or ()
    if keys[:1] == ("recommendations",):
        return {"recommendations"}
    if len(keys) >= 2 and keys[0] == "customer" and keys[1] in CATALOG_FIELDS:
        return {"customer"}
    if len(keys) >= 2 and keys[0] == "order" and keys[1] in REPURCHASE_FIELDS:
        return {"repurchase"}
    return set()


def judged(conn, ruleset, shop_id: int, event: Event) -> Event:
    """The event with the catalog facts its rules read; the event itself when none."""
    wanted = needs(ruleset, event.kind)
    if not wanted:
        return event
    settings = ruleset.settings_for(event.shop).recommend
    changes: dict = {}
    order = event.order
    if "repurchase" in wanted and order:
        due = repurchase_due(conn, shop_id, order, event, settings.min_observations)
        if due is not None:
            changes["order"] = {**order, **due}
    customer = event.customer
    if customer and event.customer_ref and wanted & {"customer", "purchase_types"}:
        customer = dict(customer)
        if "customer" in wanted:
            customer.update(_customer_facts(conn, shop_id, event))
        if "purchase_types" in wanted and customer.get("purchases"):
            customer["purchases"] = _typed(conn, shop_id, customer["purchases"])
        changes["customer"] = customer
    if "recommendations" in wanted:
        refs = [i.get("product_id") for i in (order or {}).get("line_items") or []]
        found = goes_with.recommend(conn, shop_id, refs, event.customer_ref, MAX_RECOMMENDATIONS)
        changes["facts"] = {**event.facts, "recommendations": {"count": len(found)}}
    return replace(event, **changes) if changes else event


def repurchase_due(conn, shop_id: int, order: dict, event: Event, min_observations: int):
    """``repurchase_due_at`` and the cycle behind it: the soonest of the order's products
    whose own cycle, else whose type's, was observed often enough; None without one."""
    start = parse_time(order.get("created_at")) or event.occurred_at
    best = None
    for item in order.get("line_items") or []:
        if not isinstance(item, dict):
            continue
        for scope, ref in (("product", item.get("product_id")), ("type", item.get("product_type"))):
            cycle = recommend.cycle(conn, shop_id, scope, ref) if ref else None
            if cycle is not None and cycle.observations >= min_observations:
                due = start + timedelta(days=cycle.median_days)
                if best is None or due < best[0]:
                    best = (due, cycle)
                break
    if best is None:
        return None
    due, cycle = best
    return {
        "repurchase_due_at": iso(due),
        "repurchase_cycle": {
            "scope": cycle.scope,
            "ref": cycle.ref,
            "median_days": round(cycle.median_days, 1),
            "observations": cycle.observations,
        },
    }


def _customer_facts(conn, shop_id: int, event: Event) -> dict:
    """The customer's catalog history, this order included as the event tells it."""
    earlier = [
        row._asdict()
        for row in catalog.customer_lines(conn, shop_id, event.customer_ref, event.order_ref)
    ]
    current = []
    if event.order and event.kind not in catalog.GONE and not event.order.get("cancelled_at"):
        current = catalog.line_rows(shop_id, event.order, event.customer_ref)
    lines = earlier + current
    known = catalog.get_products(conn, shop_id, {line["product_ref"] for line in lines})
    return catalog_history(lines, known)


def _typed(conn, shop_id: int, purchases: list) -> list:
    """Earlier purchases with the catalog's product type where the order carried none."""
    refs = [
        p.get("product_id") for p in purchases if isinstance(p, dict) and not p.get("product_type")
    ]
    known = catalog.get_products(conn, shop_id, refs)
    return [
        {**p, "product_type": known[str(p["product_id"])].product_type}
        if isinstance(p, dict) and not p.get("product_type") and str(p.get("product_id")) in known
        else p
        for p in purchases
    ]
