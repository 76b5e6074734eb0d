"""Shopify products: the canonical product of a ``products/*`` webhook, and the catalog listing.

The webhook body and each record of ``GET /admin/api/{version}/products.json``
are the same REST product: ``id``, ``title``, ``handle``, ``product_type``,
``vendor``, ``tags`` (a comma-separated string), ``status`` (active, draft,
archived), ``published_at`` (null when not on the online store), ``variants``
(``price`` as a string, ``inventory_management``, ``inventory_policy``,
``inventory_quantity``) and ``image`` / ``images`` (``src``, ``alt``). A
deleted product's body is only ``{"id": ...}``. The listing pages like the
order listing: 250 a page, following the ``Link: rel="next"`` URL as given
(tests/fixtures/shopify/SOURCES.md, "Products").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from aftersale.connectors.base import compact, decimal_or_zero, ref, time_or_none
from aftersale.connectors.paging import Page
from aftersale.connectors.shopify import rest
from aftersale.connectors.shopify.canonical import tag_list
from aftersale.core.events import iso, money
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

PAGE_SIZE = 250


def _text(value) -> str | None:
    """A string field as sent; anything else (a list where a string belongs) is absent."""
    return value if isinstance(value, str) and value else None


def canonical_product(payload: dict) -> dict:
    """The catalog's view of a REST product (missing facts stay absent)."""
    variants = [v for v in _list(payload.get("variants")) if isinstance(v, dict)]
    image = _image(payload)
    product_type = (_text(payload.get("product_type")) or "").strip() or None
    status = _text(payload.get("status"))
    return compact(
        {
            "id": ref(payload.get("id")),
            "title": _text(payload.get("title")),
            "handle": _text(payload.get("handle")),
            "product_type": product_type,
            "categories": [product_type] if product_type else None,
            "vendor": _text(payload.get("vendor")),
            "tags": tag_list(payload.get("tags")),
            "status": status,
            "price": _lowest_price(variants),
            "image_url": _text(image.get("src")),
            "image_alt": _text(image.get("alt")),
            # on the online store: active and given a publication date
            "published": status in (None, "active") and bool(payload.get("published_at")),
            "in_stock": _in_stock(variants),
            "updated_at": iso(time_or_none(payload.get("updated_at"))),
        }
    )


def _image(payload: dict) -> dict:
    image = payload.get("image")
    if isinstance(image, dict) and _text(image.get("src")):
        return image
    images = [
        i for i in _list(payload.get("images")) if isinstance(i, dict) and _text(i.get("src"))
    ]
    return images[0] if images else {}  # listed in position order


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _lowest_price(variants: list[dict]) -> str | None:
    prices = [decimal_or_zero(v.get("price")) for v in variants if v.get("price") not in (None, "")]
    return money(min(prices)) if prices else None


def _in_stock(variants: list[dict]) -> bool:
    """Sellable now: a variant whose stock is not tracked, may oversell, or has some left."""
    if not variants:
        return True
    for variant in variants:
        if variant.get("inventory_management") in (None, ""):
            return True
        if variant.get("inventory_policy") == "continue":
            return True
        if decimal_or_zero(variant.get("inventory_quantity")) > Decimal(0):
            return True
    return False


def product_pages(
    shop: ShopAccess,
    session: requests.Session,
    *,
    sleep=time.sleep,
    page_size: int = PAGE_SIZE,
) -> Iterator[Page]:
    """Every product of the shop, a page at a time."""
    return rest.list_pages(shop, session, "products", {"limit": page_size}, sleep=sleep)
