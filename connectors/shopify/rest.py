"""Shopify's REST Admin API lists (orders, products), paged the way Shopify pages them.

The first request carries the filters; later pages follow the
``Link: <...page_info=...>; rel="next"`` header, whose URL must be used as it
is (Shopify refuses filters beside ``page_info``). 429 and 5xx are waited out
page by page (connectors/paging.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aftersale.connectors.paging import Page, json_list, polite_get
from aftersale.connectors.shopify.api import API_VERSION
from aftersale.core.errors import PermanentError
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="?next"?')


def list_pages(
    shop: ShopAccess,
    session: requests.Session,
    resource: str,
    params: dict,
    *,
    sleep=time.sleep,
) -> Iterator[Page]:
    """Pages of ``/admin/api/{version}/{resource}.json``, the records under ``resource``."""
    token = shop.credentials.get("access_token")
    if not token:
        raise PermanentError(f"no Shopify access token stored for {shop.domain}")
    base = (shop.api_url or f"https://{shop.domain}").rstrip("/")
    url: str | None = f"{base}/admin/api/{API_VERSION}/{resource}.json"
    headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
    what = f"Shopify {resource}"
    query: dict | None = params
    while url:
        response = polite_get(session, url, what, params=query, sleep=sleep, headers=headers)
        yield Page(json_list(response, what, resource), response)
        url, query = next_page(response.headers.get("Link")), None


def next_page(link: str | None) -> str | None:
    """The ``rel="next"`` URL of a Link header (None on the last page)."""
    match = NEXT_LINK.search(link or "")
    return match.group(1) if match else None
