"""WooCommerce REST API lists (orders, products), paged the way WordPress pages them.

``page=N`` and ``per_page`` (at most 100), until ``X-WP-TotalPages`` is reached,
or, where a proxy dropped that header, until a short page. 429 and 5xx are
waited out page by page (connectors/paging.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aftersale.connectors.paging import Page, json_list, polite_get
from aftersale.core.errors import PermanentError
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests


def list_pages(
    shop: ShopAccess,
    session: requests.Session,
    resource: str,
    params: dict,
    *,
    page_size: int,
    sleep=time.sleep,
) -> Iterator[Page]:
    """Pages of ``/wp-json/wc/v3/{resource}`` with ``params`` on every request."""
    key = shop.credentials.get("consumer_key")
    secret = shop.credentials.get("consumer_secret")
    if not key or not secret:
        raise PermanentError(f"no WooCommerce API key stored for {shop.domain}")
    base = (shop.api_url or shop.credentials.get("url") or f"https://{shop.domain}").rstrip("/")
    url = f"{base}/wp-json/wc/v3/{resource}"
    what = f"WooCommerce {resource}"
    page = 1
    while True:
        response = polite_get(
            session,
            url,
            what,
            params={**params, "per_page": page_size, "page": page},
            sleep=sleep,
            auth=(key, secret),
            headers={"Accept": "application/json"},
        )
        records = json_list(response, what)
        yield Page(records, response)
        total = _int(response.headers.get("X-WP-TotalPages"))
        if not records or (total is not None and page >= total):
            return
        if total is None and len(records) < page_size:
            return
        page += 1


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
