"""``recommendations(n=3)`` in templates: what goes with the order, ready to show.

Each product comes with its title, image (URL and alt text, the title when the
shop wrote none), price formatted in the message's language and currency
(Babel, through the ``money`` filter) and a signed ``/g/`` link that records
the click before it sends the customer to the product page. The products are
looked up when a template first asks (store/goes_with.py, one indexed query
and a fallback), on the connection the action is prepared on; previews and
load-time checks have no such source and get an empty list.
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import pass_context

from aftersale.core.events import Event
from aftersale.store import goes_with
from aftersale.workers.template_filters import LINKS_KEY, money

#: the template context key holding the lookup (not a name templates use)
SOURCE_KEY = "_recommend"
MAX_SHOWN = 12


def source_for(conn, shop_id: int, event: Event) -> Callable[[int], list]:
    """The lookup for one message: up to ``n`` recommendations, asked once per ``n``."""
    order = event.order or {}
    refs = [i.get("product_id") for i in order.get("line_items") or [] if isinstance(i, dict)]
    found: dict[int, list] = {}

    def lookup(n: int) -> list:
        if n not in found:
            found[n] = goes_with.recommend(conn, shop_id, refs, event.customer_ref, n)
        return found[n]

    return lookup


@pass_context
def recommendations(ctx, n: int = 3) -> list[dict]:
    """Up to ``n`` products to suggest, as dicts a template can show."""
    lookup = ctx.get(SOURCE_KEY)
    if lookup is None:
        return []
    try:
        count = max(1, min(MAX_SHOWN, int(n)))
    except (TypeError, ValueError):
        count = 3
    links = ctx.get(LINKS_KEY)
    shown = []
    for rec in lookup(count):
        product = rec.product
        item = {"product_id": product.product_ref, "title": product.title, "handle": product.handle}
        shown.append(
            {
                "product_id": product.product_ref,
                "title": product.title or "",
                "url": links.product(item) if links is not None else (product.url or ""),
                "image_url": product.image_url or "",
                "image_alt": product.image_alt or product.title or "",
                "price": money(ctx, product.price, product.currency) if product.price else "",
                "vendor": product.vendor or "",
                "product_type": product.product_type or "",
                "reason": rec.reason,
            }
        )
    return shown
