"""WooCommerce products: the canonical product of a ``product.*`` webhook, and the catalog listing.

A product webhook's body is the REST v3 product (``class-wc-rest-products-controller.php``
``prepare_object_for_response``), as is each record of ``GET /wp-json/wc/v3/products``:
``id``, ``name``, ``slug``, ``permalink``, ``status`` (publish, draft, pending, private),
``catalog_visibility`` (visible, catalog, search, hidden), ``price`` (a string, the
current price), ``stock_status`` (instock, outofstock, onbackorder), ``categories`` and
``tags`` ([{id, name, slug}], names HTML-escaped as WordPress stores them), ``images``
([{id, src, name, alt}], the first is the featured one) and ``brands`` (WooCommerce 9.6+).
A deleted product's body still has its ``id``. The listing pages with ``page`` and
``per_page`` (at most 100) and says how many pages in ``X-WP-TotalPages``
(tests/fixtures/woocommerce/SOURCES.md, "Products").
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aftersale.connectors.base import compact, ref, time_or_none
from aftersale.connectors.paging import Page
from aftersale.connectors.woocommerce import rest
from aftersale.core.events import iso, money
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

PAGE_SIZE = 100
#: stock states in which the product can be ordered now
SELLABLE = frozenset({"instock", "onbackorder"})


def _text(value) -> str | None:
    """A string field as sent; anything else (a list where a string belongs) is absent."""
    return value if isinstance(value, str) and value else None


def canonical_product(payload: dict) -> dict:
    """The catalog's view of a REST product (missing facts stay absent)."""
    categories = _names(payload.get("categories"))
    image = next(
        (i for i in _list(payload.get("images")) if isinstance(i, dict) and _text(i.get("src"))),
        {},
    )
    brands = _names(payload.get("brands"))
    return compact(
        {
            "id": ref(payload.get("id")),
            "sku": _text(payload.get("sku")),
            "title": _text(payload.get("name")),
            "handle": _text(payload.get("slug")),
            "url": _text(payload.get("permalink")),
            "product_type": categories[0] if categories else None,
            "categories": categories,
            "vendor": brands[0] if brands else None,
            "tags": _names(payload.get("tags")),
            "status": _text(payload.get("status")),
            "price": _price(payload.get("price")),
            "image_url": _text(image.get("src")),
            "image_alt": _text(image.get("alt")),
            "published": payload.get("status") == "publish"
            and payload.get("catalog_visibility") != "hidden",
            "in_stock": _text(payload.get("stock_status")) in (None, *SELLABLE),
            "updated_at": iso(time_or_none(payload.get("date_modified_gmt"))),
        }
    )


def _names(terms) -> list[str]:
    return [
        html.unescape(t["name"])
        for t in _list(terms)
        if isinstance(t, dict) and _text(t.get("name"))
    ]


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _price(value) -> str | None:
    try:
        return money(value)
    except ValueError:
        return None


def product_pages(
    shop: ShopAccess,
    session: requests.Session,
    *,
    sleep=time.sleep,
    page_size: int = PAGE_SIZE,
) -> Iterator[Page]:
    """Every product of the store, a page at a time."""
    params = {"orderby": "id", "order": "asc"}
    return rest.list_pages(shop, session, "products", params, page_size=page_size, sleep=sleep)
